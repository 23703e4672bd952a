//! Harness for walcast's end-to-end tests: throwaway PostgreSQL clusters on their own ports.
