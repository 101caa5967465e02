# stage plugins: run
