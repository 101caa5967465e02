# stage plugins: git
