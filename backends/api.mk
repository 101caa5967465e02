# keruta-api backend module (libcurl + json-c).  The executable dlopens it
# only for commands that talk to the API; it calls back into the core
# through the table its init receives (core/host.h), and imports no kr_*
# symbol.
pkglib_LTLIBRARIES += backend-api.la
backend_api_la_SOURCES = \
	backends/api.c \
	backends/api_paths.c backends/http.c backends/http.h backends/api_paths.h \
	backends/logship.c backends/logship.h \
	$(KR_MODULE_HOST)
backend_api_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS) -fvisibility=hidden
backend_api_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^kr_backend_api_module$$'
backend_api_la_LIBADD = $(CURL_LIBS) $(JSONC_LIBS) $(PTHREAD_LIBS)
