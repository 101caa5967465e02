# stage plugins: collect
