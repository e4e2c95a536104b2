import pytest

from tests.labeling.fake_claude import FakeClaude


@pytest.fixture
def fake_claude(settings):
    """The real anthropic SDK pointed at a local fake Messages API, with short timeouts."""
    with FakeClaude() as fake:
        settings.ANTHROPIC_API_KEY = "sk-ant-test-not-a-real-key"
        settings.ANTHROPIC_BASE_URL = fake.url
        settings.IMAGINEER_CLAUDE_MODEL = "claude-test-model"
        settings.IMAGINEER_CLAUDE_TIMEOUT_SECONDS = 1.0
        settings.IMAGINEER_CLAUDE_MAX_RETRIES = 2
        yield fake
