# tests for: init
