"""The HTTP layer: OpenAI's wire format, error shapes and routes over the service layer."""
