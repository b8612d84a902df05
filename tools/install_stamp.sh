# Sourced by tools/install.sh, tools/run_tests.sh and tools/demo.sh (needs ROOT set).
#
# install_stamp: a digest of what decides the environment (install.sh and setup.py);
#   install.sh writes it to .venv/.beitlab-install-stamp when it has finished.
# ensure_installed: run tools/install.sh when .venv is absent, was left unfinished or was
#   made by another version of those files, or when the stack no longer imports.

install_stamp() {
  cat "$ROOT/tools/install.sh" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1
}

ensure_installed() {
  local stamp="$ROOT/.venv/.beitlab-install-stamp"
  if [ -x "$ROOT/.venv/bin/python" ] && [ -f "$stamp" ] \
      && [ "$(cat "$stamp")" = "$(install_stamp)" ] \
      && "$ROOT/.venv/bin/python" -c "import mmcv.ops, mmdet, mmseg, beitlab" >/dev/null 2>&1; then
    return 0
  fi
  echo ">>> .venv is missing or incomplete: running tools/install.sh"
  bash "$ROOT/tools/install.sh"
}
