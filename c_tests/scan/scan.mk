# corotls: the TLS scanner gate.  sslyze (Mozilla "intermediate") and
# testssl.sh scan tls_echo_server with an ECDSA and an RSA certificate
# (c_tests/scan/scan_check.sh says what passes).  Included by the top-level
# Makefile.
#
#   make scan-venv    sslyze, pinned in c_tests/scan/requirements.txt, in a
#                     virtualenv in target/venv (Debian: apt-get install python3-venv)
#   make scan-check   the scan; also needs testssl.sh (apt-get install testssl.sh)
#
# scan-check finds sslyze in target/venv, .venv or on PATH (or $SSLYZE);
# a missing sslyze or testssl fails the check.  .ci/run installs both.

SCAN_VENV := target/venv
SCAN_REQS := c_tests/scan/requirements.txt
PYTHON3   ?= python3

.PHONY: scan-check scan-venv
scan-venv: $(SCAN_VENV)/.installed

$(SCAN_VENV)/.installed: $(SCAN_REQS)
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON3) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $(SCAN_REQS)
	@touch $@

scan-check: $(EX_OUT)/tls_echo_server $(SCAN_VENV)/.installed
	@$(SUITE) scan c_tests/scan/scan_check.sh $(EX_OUT)/tls_echo_server

CHECKS += scan-check
SUITES += scan
