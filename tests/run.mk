# tests for: run
