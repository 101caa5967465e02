# stage plugins: init
