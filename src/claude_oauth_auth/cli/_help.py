"""The command line's help texts: the description, each command's epilog, option help."""

__all__ = [
    "COMPLETION_EPILOG",
    "DESCRIPTION",
    "KEEP_FRESH_EPILOG",
    "LOGOUT_EPILOG",
    "MOVE_EPILOG",
    "REFRESH_EPILOG",
    "SAVE_EPILOG",
    "STATUS_EPILOG",
    "STORE_HELP",
    "TOKEN_EPILOG",
]

DESCRIPTION = """\
Find, check and maintain the credentials claude-oauth-auth uses to call the Claude API.

exit codes:
  0  ok
  1  no usable credential, a setting the client refuses, the API or the token endpoint
     refused the request, or bad input
  2  usage error (including a command that needs --show or --yes to go on)

--debug and --json may come before or after the command; every command but completion
takes --json. Tab completion for bash, zsh and fish: see `claude-oauth-auth completion --help`.
"""

STATUS_EPILOG = """\
examples:
  claude-oauth-auth status           the credential in use, every source, and what to fix
  claude-oauth-auth status --json    the same as JSON (never a secret)
  claude-oauth-auth status --check   also ask the API (one models list call) whether it works

Offline unless --check is given. Exits 0 when a usable credential exists, 1 when none does
or a setting makes a source unusable (a bad CLAUDE_OAUTH_TOKEN_URL, a bad
CLAUDE_TOKEN_REFRESH_THRESHOLD, a bad "token_url" in a token file), and with --check also
when the API refuses the credential or cannot be reached.
"""

TOKEN_EPILOG = """\
examples:
  curl -H "$(claude-oauth-auth token --header)" -H "anthropic-version: 2023-06-01" \\
      https://api.anthropic.com/v1/models
  claude-oauth-auth token --header | curl -H @- ...   the same, header lines from stdin
  claude-oauth-auth token --json | jq .expires_at
  claude-oauth-auth token --show    print it on this terminal anyway

--header prints the header lines a client sends for the credential: for OAuth
"Authorization: Bearer …" and "anthropic-beta: oauth-2025-04-20"; for an API key or a
bearer token what the SDK sends for it.

Prints the credential a client would use (an OAuth access token, refreshed first when it is
close to expiry; or the bearer token or API key in use) and nothing else. Refuses to print to
a terminal unless --show is given: a token on screen is a token in scrollback.
Exits 0 on success, 1 when there is no usable credential or the refresh is refused,
2 on a terminal without --show.
"""

REFRESH_EPILOG = """\
examples:
  claude-oauth-auth refresh          refresh now and print the new expiry
  claude-oauth-auth refresh --json   the same as JSON

Forces a refresh of the OAuth credential in use and saves the rotated tokens where they came
from. Never prints a token. Exits 0 on success, 1 when the credential in use cannot be
refreshed or the token endpoint refuses.
"""

SAVE_EPILOG = """\
examples:
  claude-oauth-auth save < tokens.json   then delete tokens.json
  pbpaste | claude-oauth-auth save       from the clipboard (macOS)
  claude-oauth-auth save                 paste on the terminal (not echoed), then Ctrl-D
  claude-oauth-auth save --store redis://redis:6379/0 < tokens.json   seed a shared store

  where the JSON looks like
  {"access_token": "...", "refresh_token": "...", "expires_in": 28800}

Reads one JSON object on standard input: "access_token" (required), "refresh_token"
(recommended: without it the token cannot be renewed), and "token_expiry" (unix seconds) or
"expires_in" (seconds from now); optional "client_id", "token_url", "scopes". A token
endpoint's answer can be piped in as it is. Writes the --store given, else where clients look
first: $CLAUDE_AUTH_FILE, else $CLAUDE_TOKEN_STORE, else ~/.config/claude/auth.json (a 0600
file); atomically and under the refresh lock, and says where. Refuses Claude Code's own
credentials file. Exits 0 when saved, 1 on invalid input (what was stored is left untouched).
"""

LOGOUT_EPILOG = """\
examples:
  claude-oauth-auth logout          asks before deleting (on a terminal)
  claude-oauth-auth logout --yes    deletes without asking
  claude-oauth-auth logout --store redis://redis:6379/0 --yes   a shared store's login

Deletes the login in --store, else where clients look first: $CLAUDE_AUTH_FILE, else
$CLAUDE_TOKEN_STORE, else ~/.config/claude/auth.json (with a token file, its lock and refresh
state files beside it too), and says what it deleted. Never touches Claude Code's
credentials: log out of Claude Code with `claude` and /logout. Exits 0 when deleted or already
absent, 1 when declined or refused, 2 without a terminal and without --yes.
"""

MOVE_EPILOG = """\
examples:
  claude-oauth-auth move --from ~/.config/claude/auth.json --to redis://redis:6379/0
  claude-oauth-auth move --from keyring: --to rediss://:PASSWORD@cache.example:6380/0

Writes the login to --to (refused when that store holds another login), reads it back, then
deletes it from --from (a token file's path or a store URL), all under the source's lock:
a refresh token works in one place only. Refuses Claude Code's own login. Stop the programs
that use the source first. Exits 0 when moved, 1 when refused or when a step failed.
"""

KEEP_FRESH_EPILOG = """\
examples:
  claude-oauth-auth keep-fresh --store redis://redis:6379/0
  CLAUDE_TOKEN_STORE=redis://redis:6379/0 claude-oauth-auth keep-fresh --ahead 900
  claude-oauth-auth keep-fresh --store redis://redis:6379/0 --to-profile shared
  claude-oauth-auth keep-fresh --store redis://redis:6379/0 --health-port 9464

Refreshes the login in --store (else where workers look first: $CLAUDE_AUTH_FILE, else
$CLAUDE_TOKEN_STORE, else our token file) between --ahead - --jitter and --ahead seconds
before it expires, so that workers never refresh it themselves. One line per refresh on
standard output (with --json, one JSON object per line). Between refreshes, writes back a login
that Redis lost (checked every --check-every seconds). With --to-profile NAME, also writes
each access token (never the refresh token) to the SDK profile NAME, for plain
anthropic.Anthropic(profile=NAME) processes, which then never refresh it; keep --ahead less
--jitter above the SDK's 120 s refresh lead. Exits 0 on SIGTERM or SIGINT, 1 when the login
is dead or was deleted (log in again) or NAME is someone's own login, 2 on bad options.
"""

COMPLETION_EPILOG = """\
examples:
  claude-oauth-auth completion bash > ~/.local/share/bash-completion/completions/claude-oauth-auth
  claude-oauth-auth completion zsh > ~/.zfunc/_claude-oauth-auth
      (and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath))
  claude-oauth-auth completion fish > ~/.config/fish/completions/claude-oauth-auth.fish

Prints the script on standard output, generated from this command line's own options (by
shtab); open a new shell to use it. For bash without the bash-completion package, add
eval "$(claude-oauth-auth completion bash)" to ~/.bashrc instead. Exits 0, 2 for an unknown
shell.
"""


STORE_HELP = (
    "a token store instead of our token file: file:///PATH, keyring:, "
    "keyring://SERVICE/USERNAME, redis[s]://HOST:PORT/DB[?key=NAME]"
)
