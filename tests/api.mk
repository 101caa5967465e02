# tests for: api
