#!/usr/bin/env bash
# Installs everything the project needs from its own files: npm packages (including the
# pinned Node 22 runtime in node_modules/.bin). Called by .ci/run; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
node_modules/.bin/node --version
