# c_tests/harness/harness.mk -- make fragment for the shared C test harness.
#
# `include c_tests/harness/harness.mk` from the top-level Makefile (paths are relative
# to the repository root), or run it alone:
#     make -f c_tests/harness/harness.mk harness-check
#     make -f c_tests/harness/harness.mk harness-check-valgrind
#
# Provides
#   HARNESS_SRC, HARNESS_HDR, HARNESS_INC, HARNESS_OBJ, HARNESS_CFLAGS
#                                    (the harness is four parts: core, net,
#                                    spawn, peers; SRC and OBJ list them all)
#   HARNESS_CERTDIR / HARNESS_CERTS  the generated certificates and their stamp
#   HARNESS_ENV                      environment to run C tests with
#   HARNESS_VALGRIND                 valgrind command line for C tests
#   HARNESS_SUITE                    suite.sh: run, count, time and record a
#                                    suite of make check (run.sh --suite for
#                                    a list of test programs)
#   targets: $(HARNESS_CERTS), $(HARNESS_OBJ),
#            target/c_tests/harness_selftest, harness-check,
#            harness-check-valgrind (phony)
#
# A test binary: link $(HARNESS_OBJ) (or compile $(HARNESS_SRC)) with
# $(HARNESS_CFLAGS) $(HARNESS_INC), depend on $(HARNESS_CERTS), and run it
# from the repository root with $(HARNESS_ENV).

# This fragment must not become the includer's default goal.
harness_saved_default_goal := $(.DEFAULT_GOAL)

ifeq ($(origin CC),default)
CC = gcc
endif
CC ?= gcc

HARNESS_CFLAGS ?= -std=gnu11 -Wall -Wextra -Werror -g -O1 -D_GNU_SOURCE
HARNESS_DIR := c_tests/harness
HARNESS_PARTS := core net spawn peers
HARNESS_SRC := $(HARNESS_PARTS:%=$(HARNESS_DIR)/%.c)
HARNESS_HDR := $(HARNESS_DIR)/harness.h $(HARNESS_DIR)/internal.h
HARNESS_INC := -I$(HARNESS_DIR)
HARNESS_BUILD := target/c_tests
HARNESS_OBJ := $(HARNESS_PARTS:%=$(HARNESS_BUILD)/harness_%.o)
HARNESS_CERTDIR := target/certs
HARNESS_CERTS := $(HARNESS_CERTDIR)/.done
HARNESS_ENV := COROTLS_CERTDIR=$(HARNESS_CERTDIR) COROTLS_PEERDIR=c_tests/peers
HARNESS_VALGRIND ?= valgrind --error-exitcode=1 --leak-check=full -q
# Runs one suite of make check and records its counts (see suite.sh).
HARNESS_SUITE := $(HARNESS_DIR)/suite.sh

$(HARNESS_CERTS): $(HARNESS_DIR)/certs.sh $(HARNESS_DIR)/pki.sh
	bash $(HARNESS_DIR)/certs.sh $(HARNESS_CERTDIR)

$(HARNESS_OBJ): $(HARNESS_BUILD)/harness_%.o: $(HARNESS_DIR)/%.c $(HARNESS_HDR)
	@mkdir -p $(@D)
	$(CC) $(HARNESS_CFLAGS) $(HARNESS_INC) -c -o $@ $<

$(HARNESS_BUILD)/harness_selftest: $(HARNESS_DIR)/harness_selftest.c $(HARNESS_OBJ) $(HARNESS_HDR)
	@mkdir -p $(@D)
	$(CC) $(HARNESS_CFLAGS) $(HARNESS_INC) -o $@ $(HARNESS_DIR)/harness_selftest.c $(HARNESS_OBJ)

.PHONY: harness-check harness-check-valgrind
harness-check: $(HARNESS_BUILD)/harness_selftest $(HARNESS_CERTS)
	@$(HARNESS_SUITE) harness env $(HARNESS_ENV) ./$(HARNESS_BUILD)/harness_selftest
SUITES += harness

harness-check-valgrind: $(HARNESS_BUILD)/harness_selftest $(HARNESS_CERTS)
	$(HARNESS_ENV) $(HARNESS_VALGRIND) ./$(HARNESS_BUILD)/harness_selftest

# Run alone (make -f c_tests/harness/harness.mk): default to harness-check;
# included: leave the includer's default goal alone.
ifeq ($(words $(MAKEFILE_LIST)),1)
.DEFAULT_GOAL := harness-check
else
.DEFAULT_GOAL := $(harness_saved_default_goal)
endif
