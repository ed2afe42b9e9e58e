//! OpenAI and Anthropic provider mocks: a high-rate native server for load runs and wiremock builders for functional tests.
