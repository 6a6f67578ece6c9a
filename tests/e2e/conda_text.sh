#!/usr/bin/env bash
# tests/e2e/conda_text.sh — dry runs of conda environments that are not YAML
# (docs/builds.md "Conda text environments"): nf-wave sends local .txt conda
# files as `packages.environment`. An explicit lock file, a spec list, a YAML
# file and malformed ones, on waved's defaults; the build ids are compared with
# the independent reference tests/fixtures/gen_checksum_vectors.py computes over
# the expected container file and conda YAML; then the conda and pixi request
# shapes of nf-wave and the Wave CLI against the expected outputs of Wave's tests.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

WAVED_LOG_LEVEL=warn
start_waved ""

b64() { printf '%b' "$1" | base64 -w0; }
post() {
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
field() { json_get "$1" "$2" 2>/dev/null || true; }
# want_id CONTAINERFILE_FIXTURE CONDA_YAML — the reference containerId (linux/amd64, embedded repo).
want_id() {
  $PY - "$HERE/fixtures/templates/$1" "$2" <<'PY'
import sys
sys.path.insert(0, sys.argv[1].rsplit("/templates/", 1)[0])
from gen_checksum_vectors import container_id
print(container_id(open(sys.argv[1]).read(), sys.argv[2].encode().decode("unicode_escape"),
                   "linux/amd64", "localhost:9090/wave/build"))
PY
}

# ---- an explicit lock file (conda list --explicit) ----------------------------
LOCK='# This file may be used to create an environment using:\n# $ conda create --name <env> --file <this file>\n# platform: linux-64\n@EXPLICIT\nhttps://conda.anaconda.org/conda-forge/linux-64/zlib-1.3.1-hb9d3cd8_2.conda#c9f075ab2f33b3bbee9e62d4ad0a6cd8\nhttps://conda.anaconda.org/bioconda/linux-64/bwa-0.7.18-he4a0461_1.tar.bz2\n'
ok "lock file: 200" is "$(post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$(b64 "$LOCK")\"},\"dryRun\":true}" "$T/r1.json")" 200
LOCK_YAML='dependencies:\n- https://conda.anaconda.org/conda-forge/linux-64/zlib-1.3.1-hb9d3cd8_2.conda#c9f075ab2f33b3bbee9e62d4ad0a6cd8\n- https://conda.anaconda.org/bioconda/linux-64/bwa-0.7.18-he4a0461_1.tar.bz2\n'
W1=$(want_id conda-v2-environment.Dockerfile "$LOCK_YAML")
ok "lock file: build id = reference checksum of Wave's conda-file template + the URLs" \
  is "$(field "$T/r1.json" 'd["buildId"]')" "${W1}_0"
ok "lock file: image tagged with the checksum only (URLs name no tool)" \
  is "$(field "$T/r1.json" 'd["containerImage"]')" "localhost:9090/wave/build:$W1"

# ---- a spec list (conda create --file) ---------------------------------------------
SPECS='# tools\nbioconda::samtools=1.17\nbwa\n'
ok "spec list: 200" is "$(post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$(b64 "$SPECS")\",\"channels\":[\"conda-forge\",\"bioconda\"]},\"dryRun\":true}" "$T/r2.json")" 200
ok "entries: 200" is "$(post '{"packages":{"type":"CONDA","entries":["bioconda::samtools=1.17","bwa"],"channels":["conda-forge","bioconda"]},"dryRun":true}' "$T/r3.json")" 200
ok "spec list: same id and image as the same specs sent as entries" \
  is "$(field "$T/r2.json" 'd["buildId"]+d["containerImage"]')" "$(field "$T/r3.json" 'd["buildId"]+d["containerImage"]')"
W2=$(want_id conda-v2-environment.Dockerfile 'channels:\n- conda-forge\n- bioconda\ndependencies:\n- bioconda::samtools=1.17\n- bwa\n')
ok "spec list: build id = reference checksum" is "$(field "$T/r2.json" 'd["buildId"]')" "${W2}_0"
ok "spec list: tag names the tools" \
  is "$(field "$T/r2.json" 'd["containerImage"]')" "localhost:9090/wave/build:samtools-1.17_bwa--$W2"
ok "spec list with conda/pixi:v1: 200" \
  is "$(post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$(b64 "$SPECS")\"},\"buildTemplate\":\"conda/pixi:v1\",\"dryRun\":true}" "$T/r4.json")" 200

# ---- YAML files keep the YAML checks; malformed text files are 400s ---------------------
ok "YAML environment: 200" \
  is "$(post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$(b64 'name: x\ndependencies:\n- bwa\n')\"},\"dryRun\":true}" "$T/r5.json")" 200
ok "broken YAML: 400" \
  is "$(post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$(b64 'name: x\ndependencies:\n  - [bwa\n')\"},\"dryRun\":true}" "$T/r6.json")" 400
ok "broken YAML: the YAML error" has "$(field "$T/r6.json" 'd["message"]')" "Invalid conda YAML at line"
ok "lock file with a spec line: 400" \
  is "$(post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$(b64 '@EXPLICIT\nhttps://x.org/a-1-0.conda\nbwa=1\n')\"},\"dryRun\":true}" "$T/r7.json")" 400
ok "lock file with a spec line: names the line" \
  is "$(field "$T/r7.json" 'd["message"]')" "Invalid conda lock file at line 3: expected one http(s) package URL"
ok "empty lock file: 400" \
  is "$(post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$(b64 '@EXPLICIT\n')\"},\"dryRun\":true}" "$T/r8.json")" 400
# ---- the request shapes of nf-wave and the Wave CLI (tests/test_templates.c wave_request_shapes):
# container files = the expected outputs of Wave's own tests (tests/fixtures/templates/wave-*)
E='"entries":["bwa=0.7.15","salmon=1.1.1"]'
ENTRIES_YAML='channels:\n- conda-forge\n- bioconda\ndependencies:\n- bwa=0.7.15\n- salmon=1.1.1\n'
post "{\"packages\":{\"type\":\"CONDA\",$E,\"channels\":[\"conda-forge\",\"bioconda\"]},\"dryRun\":true,\"nameStrategy\":\"none\"}" "$T/s1.json" >/dev/null
ok "shape entries+channels: id" is "$(field "$T/s1.json" 'd["buildId"]')" "$(want_id wave-v2-entries.Dockerfile "$ENTRIES_YAML")_0"
post "{\"packages\":{\"type\":\"CONDA\",$E,\"channels\":[\"conda-forge\",\"bioconda\"],\"condaOpts\":{\"mambaImage\":\"mambaorg/micromamba:1.5.10-noble\",\"basePackages\":\"conda-forge::procps-ng\",\"baseImage\":\"ubuntu:24.04\"}},\"dryRun\":true}" "$T/s2.json" >/dev/null
ok "shape Wave CLI (v1 mamba image): same id" is "$(field "$T/s2.json" 'd["buildId"]')" "$(field "$T/s1.json" 'd["buildId"]')"
ENV=$(b64 'channels:\n- aa\ndependencies:\n- bwa=0.7.15\n- salmon=1.1.1\n')
post "{\"packages\":{\"type\":\"CONDA\",\"environment\":\"$ENV\",\"channels\":[\"xx\",\"yy\"],\"condaOpts\":{\"mambaImage\":\"mambaorg/micromamba:2.1.1\",\"baseImage\":\"ubuntu:24.04\",\"basePackages\":\"conda-forge::procps-ng\"}},\"dryRun\":true}" "$T/s3.json" >/dev/null
ok "shape environment file: id" is "$(field "$T/s3.json" 'd["buildId"]')" \
  "$(want_id wave-v2-file.Dockerfile "$(sed 's/$/\\n/' "$HERE/fixtures/templates/wave-env-channels.conda.yml" | tr -d '\n')")_0"
post '{"packages":{"type":"CONDA","entries":["https://foo.com/lock.yml"],"channels":["conda-forge","bioconda"]},"buildTemplate":"conda/micromamba:v2","dryRun":true}' "$T/s4.json" >/dev/null
ok "shape lock URL: id" is "$(field "$T/s4.json" 'd["buildId"]')" "$(want_id wave-v2-lock.Dockerfile '')_0"
post "{\"packages\":{\"type\":\"CONDA\",$E,\"channels\":[\"conda-forge\"]},\"buildTemplate\":\"conda/pixi:v1\",\"dryRun\":true}" "$T/s5.json" >/dev/null
ok "shape pixi: id" is "$(field "$T/s5.json" 'd["buildId"]')" \
  "$(want_id wave-pixi-entries.Dockerfile 'channels:\n- conda-forge\ndependencies:\n- bwa=0.7.15\n- salmon=1.1.1\n')_0"
ok "waved still answers" is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/health")" 200
e2e_finish
