# keruta-api backend module (libcurl + json-c)
