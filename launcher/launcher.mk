# The launcher (render, dispatch): a module the executable dlopens only for
# those commands, so the executable itself links libyaml alone.  It calls
# back into the core through the table its init receives (core/host.h)
# and reuses the api backend's HTTP layer (backends/http.c, compiled in
# again) for keruta-api.
pkglib_LTLIBRARIES += launcher.la
launcher_la_SOURCES = \
	launcher/launcher.c launcher/launcher.h \
	launcher/render.c \
	launcher/dispatch.c \
	launcher/keruta_api.c launcher/keruta_api.h \
	launcher/kube.c launcher/kube.h \
	launcher/ltask.c launcher/ltask.h \
	launcher/settings_check.c launcher/settings_check.h \
	launcher/manifest.c launcher/manifest.h \
	launcher/k8s_names.c launcher/k8s_names.h \
	launcher/yaml_out.c launcher/yaml_out.h \
	launcher/utf8.c launcher/utf8.h \
	backends/api_paths.c backends/api_paths.h backends/http.c backends/http.h \
	$(KR_MODULE_HOST)
launcher_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS) -I$(srcdir)/backends \
	-I$(srcdir)/launcher -fvisibility=hidden
launcher_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^kr_launcher_module$$'
launcher_la_LIBADD = $(CURL_LIBS) $(JSONC_LIBS) $(PTHREAD_LIBS)

# The launcher's rows of the settings table: the executable parses them and
# prints them in --help before launcher.so is loaded (core/settings.h), and
# settings_check.c names their flags.
libkrcore_la_SOURCES += launcher/launcher_settings.c launcher/launcher_settings.h
launcher_la_SOURCES += launcher/launcher_settings.c
