# tests for: collect
