# tests for: core
