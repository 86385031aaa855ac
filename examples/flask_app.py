"""A Flask app that answers prompts through one shared ClaudeClient.

Run it (credentials are found automatically; see `claude-oauth-auth status`):

    pip install '.[examples]'                  # from a clone
    python examples/flask_app.py
    curl -X POST http://127.0.0.1:5000/chat -H 'Content-Type: application/json' \\
         -d '{"prompt": "Hello!"}'

The client is created once, at startup, and shared by every request: it is thread-safe and
refreshes an OAuth token at most once however many requests arrive together.
"""

from __future__ import annotations

import os

import anthropic
from flask import Flask, Response, jsonify, request

from claude_oauth_auth import ClaudeClient

MODEL = os.environ.get("CLAUDE_MODEL", "claude-sonnet-4-6")


def create_app(client: ClaudeClient | None = None) -> Flask:
    """Build the app; pass a client to share one, or let it find credentials itself."""
    app = Flask(__name__)
    claude = client if client is not None else ClaudeClient()

    @app.post("/chat")
    def chat() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            return jsonify(error='send a JSON body like {"prompt": "Hello!"}'), 400
        try:
            message = claude.messages.create(
                model=MODEL,
                max_tokens=1024,
                messages=[{"role": "user", "content": prompt}],
            )
        except anthropic.AuthenticationError as error:
            return jsonify(error=f"Claude credentials were refused: {error.message}"), 401
        except anthropic.RateLimitError:
            return jsonify(error="rate limited by the Claude API; try again shortly"), 429
        except anthropic.APIStatusError as error:
            return jsonify(error=f"the Claude API answered {error.status_code}"), 502
        except anthropic.APIConnectionError:
            return jsonify(error="could not reach the Claude API"), 502
        text = "".join(block.text for block in message.content if block.type == "text")
        return jsonify(response=text, model=message.model), 200

    @app.get("/health")
    def health() -> tuple[Response, int]:
        # Which credential is in use, never the credential itself.
        return jsonify(status="ok", auth_method=claude.auth_method, source=claude.auth_source), 200

    return app


if __name__ == "__main__":
    create_app().run()
