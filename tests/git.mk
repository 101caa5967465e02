# tests for: git
