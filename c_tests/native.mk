# corotls: C tests of the native API (conf, session, conn) against real peers.
# Included by the top-level Makefile.

$(OUT)/dlopen_check: c_tests/dlopen_check.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g -o $@ $< -ldl
