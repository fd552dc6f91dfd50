# Two commands for a fresh machine with Rust and Python 3: `make demo` and `make test`.
# libtorch goes into ~/.cache/subspace (scripts/install-libtorch.sh); .libtorch links to it for cargo.

CARGO ?= cargo
# libgomp busy-waits by default, which stalls libtorch when other processes share the cores.
export OMP_WAIT_POLICY ?= PASSIVE
RELEASE := target/release
OUT ?= results

.PHONY: all setup build test demo compare bench nodes serve world editor browser-deps

all: build

setup:
	@ln -sfn "$$(./scripts/install-libtorch.sh)" .libtorch

build: setup editor
	$(CARGO) build --release --workspace
	@mkdir -p $(RELEASE)/plugins
	@for f in $(RELEASE)/libsubspace_plugin_*.so; do [ -e "$$f" ] && ln -sfn "../$$(basename $$f)" $(RELEASE)/plugins/; done; true
	@# The outside plugin example builds as a third party would (its own workspace), into the shared target/.
	$(CARGO) build --release --manifest-path examples/third-party-plugin/Cargo.toml --target-dir target
	@echo "built: $(RELEASE)/subspace with plugins in $(RELEASE)/plugins/"

test: build browser-deps
	cd $(EDITOR) && npm test
	SUBSPACE_BROWSER_TESTS=1 $(CARGO) test --release --workspace

# The editor page (host/editor, React Flow + TypeScript): built by vite into host/editor/dist, which the host
# embeds (host/build.rs), so `subspace serve` needs no Node.js. npm ci runs again only when the lockfile changes.
EDITOR := host/editor
EDITOR_SRC := $(shell find $(EDITOR)/src -type f 2>/dev/null) $(EDITOR)/index.html $(EDITOR)/vite.config.ts $(EDITOR)/tsconfig.json
editor: $(EDITOR)/dist/index.html
$(EDITOR)/node_modules/.package-lock.json: $(EDITOR)/package-lock.json
	cd $(EDITOR) && npm ci --no-audit --no-fund
$(EDITOR)/dist/index.html: $(EDITOR)/node_modules/.package-lock.json $(EDITOR_SRC)
	cd $(EDITOR) && npm run build

# The browser tests drive Debian's Chromium with playwright-core (never a downloaded browser).
browser-deps: tests/browser/node_modules/.package-lock.json
	@[ -x /usr/bin/chromium ] || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
tests/browser/node_modules/.package-lock.json: tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund

demo: build
	$(RELEASE)/subspace run examples/presets/demo.json --out $(OUT)

# Edit quality against InterFaceGAN, GANSpace and SeFa (docs/EVALUATION.md).
compare: build
	$(RELEASE)/subspace run examples/presets/compare.json --out $(OUT)/compare

# Editing your own pictures, measured with ground truth (docs/EVALUATION.md): faces of the procedural renderer
# (seeds from 5,000,000; the generator trained on renders of random 64-bit seeds) are inverted, checked against their
# labels and edited with the mixture `make demo` saved, beside sampled codes.
.PHONY: invert-eval
INVERT_COUNT ?= 64
invert-eval: build
	$(RELEASE)/world render --count $(INVERT_COUNT) --seed 5000000 --out $(OUT)/invert-eval/faces
	$(RELEASE)/subspace run examples/presets/invert-eval.json --out $(OUT)/invert-eval \
		--param folder=$(OUT)/invert-eval/faces --param truth=$(OUT)/invert-eval/faces/labels.csv --param mixture=$(OUT)/mixture

# Speed and memory (docs/PERFORMANCE.md); the slider-latency section reads the mixture `make demo` saved. The
# scikit-learn comparison runs with the libtorch venv's Python, into which scikit-learn is installed once.
bench: build
	BENCH_MIXTURE=$(OUT)/mixture BENCH_PYTHON="$$(./examples/bench/sklearn-python.sh)" $(RELEASE)/subspace-bench --device cpu

nodes: build
	$(RELEASE)/subspace nodes

# The graph editor in the browser: http://127.0.0.1:8787/ (graphs from examples/presets, runs into results/editor).
serve: build
	$(RELEASE)/subspace serve

# Retrain the default world from scratch into $(WORLD) (about 70 minutes on 2 CPU cores; docs/DEFAULT_WORLD.md).
# Not part of `make test`. WORLD=models/default replaces the shipped models.
WORLD ?= target/world-work/retrained
# cuda: train the generator on a GPU (the renderer then runs in 8 threads).
WORLD_DEVICE ?= cpu
world: setup
	$(CARGO) build --release -p subspace-world
	$(RELEASE)/world train-generator --seed 1 --minutes 60 --device $(WORLD_DEVICE) --render-threads $(if $(filter cpu,$(WORLD_DEVICE)),1,8) --out $(WORLD) --work target/world-work/gan-1-retrain
	$(RELEASE)/world train-classifier --role fit --seed 1 --out $(WORLD)
	$(RELEASE)/world train-classifier --role eval --seed 2 --out $(WORLD)
	$(RELEASE)/world sheet --models $(WORLD) --out $(WORLD)/sheets
	# Last, because it exits with status 2 when a gate fails.
	$(RELEASE)/world gates --models $(WORLD) --count 10000 --save $(WORLD)/gates.json
