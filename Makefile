# Every target installs what it needs into a local virtual environment first (.venv), so a fresh
# clone with only Python 3.11+ and the package registries works: `make test`, `make sweep`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PARAMS ?= params/16core.yaml
CORES  ?= params/16core-cores.yaml

.PHONY: test test-all fuzz sweep system run bench reproduce lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dask]'
	touch $(STAMP)

test: $(STAMP)  ## the test suite (statistical tests use fixed seeds)
	$(BIN)/python -m pytest

test-all: $(STAMP)  ## including the slow statistical runs
	$(BIN)/python -m pytest -m ''

FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)  ## fuzz the loader and --set with FUZZ_EXAMPLES generated inputs each (random; prints count and time)
	@start=$$(date +%s); \
	MCSMP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -q -s -p no:cacheprovider; rc=$$?; \
	echo "make fuzz: $$(( $$(date +%s) - start )) s wall"; exit $$rc

sweep: $(STAMP)  ## the main job: the 16-core study (results/16core/) and the same box at 16-1024 CPUs (results/16core-cores/)
	$(BIN)/mcsmp sweep $(PARAMS)
	$(BIN)/mcsmp sweep $(CORES)

system: $(STAMP)  ## the README's whole-machine answers as sweep folders: tlb_flush2 on milan-72 and haswell-4c over threads, the csd race over rates (results/)
	$(BIN)/mcsmp system params/tlb-flush2.yaml --machine params/machines/milan-72.yaml --set system.threads=1,2,4,8,16,24,36,48,60,72 -o results/tlb-flush2-milan72
	$(BIN)/mcsmp system params/tlb-flush2.yaml --machine params/machines/haswell-4c.yaml --set system.threads=1,2,3,4 -o results/tlb-flush2-haswell4c
	$(BIN)/mcsmp system params/csd-race.yaml --set workload.rate_hz=2000,4000,8000,16000,32000,64000 --set system.duration_s=1.0 -o results/csd-race

run: $(STAMP)  ## one point of the 16-core study, printed as a table
	$(BIN)/mcsmp run $(PARAMS)

bench: $(STAMP)  ## speed and memory figures (asserts nothing about time)
	$(BIN)/python benchmarks/bench.py

reproduce: $(STAMP)  ## the seed's production table, side by side with the model
	$(BIN)/mcsmp reproduce params/seed-16core.yaml

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
