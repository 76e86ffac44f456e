#!/bin/sh
# Try two coding agents against a running harmonicd, as a user would:
# Claude Code (`claude -p`, Anthropic Messages on /v1/messages) and Codex
# (`codex exec`, OpenAI Responses on /v1/responses).  Each gets a one-shot
# prompt that makes it call its shell tool, run a command, send the result
# back and answer.  Both CLIs are told not to reach the internet.
#
# Starts nothing: run `make run` (the demo stack) in another terminal first.
# Installs the CLIs with npm into a cache directory on first use.
#
# Usage: scripts/try-agents.sh
# Environment:
#   HARMONIC_URL      harmonicd's address           (default http://127.0.0.1:11435)
#   HARMONIC_MODEL    a model configured there      (default coder)
#   HARMONIC_API_KEY  a key, if harmonicd has api_keys_file (default: none)
#   HARMONIC_AGENTS_CACHE  where the CLIs and their settings live
#                     (default ~/.cache/harmonicd/agents)
#   CLAUDE_CODE_VERSION, CODEX_VERSION  npm versions (2.1.328, 0.169.0)
set -eu
url=${HARMONIC_URL:-http://127.0.0.1:11435}
model=${HARMONIC_MODEL:-coder}
cache=${HARMONIC_AGENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/harmonicd/agents}
cc_version=${CLAUDE_CODE_VERSION:-2.1.328}
codex_version=${CODEX_VERSION:-0.169.0}

say() { printf '\n==> %s\n' "$*"; }
die() { echo "try-agents: $*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is needed"
command -v node >/dev/null || die "node and npm are needed (the CLIs are npm packages)"
curl -fsS "$url/healthz" >/dev/null 2>&1 || die "no harmonicd at $url: start the demo stack with 'make run' first"
curl -fsS ${HARMONIC_API_KEY:+-H "Authorization: Bearer $HARMONIC_API_KEY"} "$url/v1/models/$model" >/dev/null 2>&1 ||
	die "harmonicd at $url has no model '$model' (set HARMONIC_MODEL to one of its models)"

# --- the CLIs, pinned, in the cache --------------------------------------
cli="$cache/cli/node_modules/.bin"
if [ ! -x "$cli/claude" ] || [ ! -x "$cli/codex" ]; then
	say "installing @anthropic-ai/claude-code@$cc_version and @openai/codex@$codex_version into $cache/cli"
	mkdir -p "$cache/cli"
	npm install --prefix "$cache/cli" --no-audit --no-fund --loglevel=error \
		"@anthropic-ai/claude-code@$cc_version" "@openai/codex@$codex_version" >/dev/null
fi
printf 'claude %s, codex %s\n' "$("$cli/claude" --version 2>/dev/null | head -1)" "$("$cli/codex" --version 2>/dev/null | head -1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/try-agents.XXXXXX")
trap 'rm -rf "$work"' EXIT
before=$(curl -fsS "$url/stats")
status=0

# --- Claude Code ----------------------------------------------------------
# ANTHROPIC_BASE_URL points the CLI at harmonicd (it calls
# /v1/messages?beta=true); ANTHROPIC_AUTH_TOKEN is sent as a Bearer key;
# every model it would use (main and the small/fast one) is the harmonicd
# model.  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC turns off everything
# that is not the model API (telemetry, error reporting, auto-update,
# release notes, model capability lookups); the DISABLE_* variables say the
# same one by one.  CLAUDE_CONFIG_DIR keeps its state out of ~/.claude.
say "Claude Code: claude -p 'Run \`echo hello-from-claude > claude.txt\` with Bash' --allowedTools Bash"
mkdir -p "$work/claude" "$cache/claude-config"
(
	cd "$work/claude"
	env -u ANTHROPIC_API_KEY \
		ANTHROPIC_BASE_URL="$url" \
		ANTHROPIC_AUTH_TOKEN="${HARMONIC_API_KEY:-harmonicd}" \
		ANTHROPIC_MODEL="$model" \
		ANTHROPIC_DEFAULT_HAIKU_MODEL="$model" \
		ANTHROPIC_CUSTOM_HEADERS="X-Harmonic-Agent: claude-code" \
		CLAUDE_CONFIG_DIR="$cache/claude-config" \
		CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
		DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 DISABLE_AUTOUPDATER=1 \
		DISABLE_FEEDBACK_COMMAND=1 CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY=1 \
		"$cli/claude" -p 'Run `echo hello-from-claude > claude.txt` with Bash' --allowedTools Bash
) || { echo "try-agents: claude exited with status $?" >&2; status=1; }
if [ "$(cat "$work/claude/claude.txt" 2>/dev/null)" = hello-from-claude ]; then
	echo "[tool turn: Bash ran 'echo hello-from-claude > claude.txt'; claude.txt = hello-from-claude]"
else
	echo "try-agents: Claude Code did not run its Bash tool (no claude.txt)" >&2
	status=1
fi

# --- Codex ----------------------------------------------------------------
# A model provider with wire_api = "responses" pointed at harmonicd's /v1.
# Offline: no update check, no analytics, no feedback uploads, no OTel
# export, no web search, and features.plugins = false (otherwise codex exec
# runs `git ls-remote https://github.com/openai/plugins.git` and looks up
# api.github.com and chatgpt.com at start).  The shell tool runs without
# Codex's own sandbox (danger-full-access) in a scratch directory.
codex_home="$cache/codex-home"
mkdir -p "$codex_home" "$work/codex"
key_line=""
[ -n "${HARMONIC_API_KEY:-}" ] && key_line='env_key = "HARMONIC_API_KEY"'
cat >"$codex_home/config.toml" <<EOF
# written by scripts/try-agents.sh
model = "$model"
model_provider = "harmonicd"
check_for_update_on_startup = false
web_search = "disabled"

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"

[features]
plugins = false

[model_providers.harmonicd]
name = "harmonicd"
base_url = "$url/v1"
wire_api = "responses"
http_headers = { "X-Harmonic-Agent" = "codex" }
$key_line
EOF
say "Codex: codex exec --skip-git-repo-check -s danger-full-access 'Run \`echo hello-from-codex > codex.txt\` with exec_command'"
(
	cd "$work/codex"
	CODEX_HOME="$codex_home" "$cli/codex" exec --skip-git-repo-check -s danger-full-access \
		'Run `echo hello-from-codex > codex.txt` with exec_command' </dev/null
) || { echo "try-agents: codex exited with status $?" >&2; status=1; }
if [ "$(cat "$work/codex/codex.txt" 2>/dev/null)" = hello-from-codex ]; then
	echo "[tool turn: exec_command ran 'echo hello-from-codex > codex.txt'; codex.txt = hello-from-codex]"
else
	echo "try-agents: Codex did not run its exec_command tool (no codex.txt)" >&2
	status=1
fi

# --- what harmonicd saw -----------------------------------------------------
say "harmonicd $url/stats: totals and agents, this run (before -> after)"
curl -fsS "$url/stats" | BEFORE="$before" node -e '
const a = JSON.parse(process.env.BEFORE);
let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
  const b = JSON.parse(s);
  const f = ["requests", "completed", "failed", "rejected", "cancelled", "prompt_tokens", "eval_tokens"];
  const row = (name, x, y) => console.log(name.padEnd(12) + f.map((k) => `${k} ${(y?.[k] ?? 0) - (x?.[k] ?? 0)}`).join("  "));
  row("totals", a.totals, b.totals);
  const was = Object.fromEntries(a.agents.map((g) => [g.name, g]));
  for (const g of b.agents) if (g.requests !== (was[g.name]?.requests ?? 0)) row(g.name, was[g.name], g);
});'
exit $status
