# The two commands of the quick start: `make demo` and `make test`.
# Both install what a fresh machine lacks first (pingora's build needs cmake; the tests start a
# real nginx as a virtual-host backend).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test prereqs

prereqs:
	@command -v cmake >/dev/null 2>&1 && { command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq cmake nginx-light; }

demo: prereqs
	cargo run --release -p poolgate-proxy -- demo

test: prereqs
	cargo test --workspace
