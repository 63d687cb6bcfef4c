# One command per job. Each installs what it needs first, so a fresh clone works.
.PHONY: setup stack run test bench evals

# scripts/setup.sh installs uv with `pip --user` when it is missing.
export PATH := $(HOME)/.local/bin:$(PATH)
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)

setup:
	bash scripts/setup.sh

stack:
	bash scripts/install-stack.sh

run: setup stack
	uv run python -m agent --outbound

test: setup stack
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run lint-imports
	uv run pytest
	cd sipbridge && LIVEKIT_SERVER_BIN=$(CURDIR)/.stack/bin/livekit-server $(GO) test -count=1 ./...

bench: setup stack
	uv run python bench/voice_latency.py $(ARGS)

# The real prompts against a real OpenAI-compatible model; needs EVALS_API_KEY (see tests/test_evals.py).
evals: setup
	uv run pytest -m evals -rs
