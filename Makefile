# One Trick Pony — the two commands of the README:
#   make demo   local demo: grist-static document + widget + fake DS with sample data
#   make test   the whole test suite (unit, fake DS, end-to-end in headless Chromium)
# Both install what they need first (Debian chromium and nginx, pip and npm packages), then build the widget.

PY ?= python3

.PHONY: setup build demo test bench template

setup:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installation de Chromium (Debian)…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 && command -v envsubst >/dev/null 2>&1 || { \
	  echo "Installation de nginx (Debian), pour les tests du relais…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx gettext-base >/dev/null; }
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	npm ci --no-audit --no-fund --loglevel=error

build: setup
	$(PY) build.py

demo: build
	$(PY) -m demo

test: build
	$(PY) -m pytest -q

template: build
	$(PY) -m demo.make_template
