# corotls: checks of the built library as a package: it loads alone, exports
# only its C ABI, and installs.  Included by the top-level Makefile.

$(OUT)/dlopen_check: c_tests/package/dlopen_check.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g -o $@ $< -ldl

.PHONY: dlopen-check install-check

# libcorotls.so must load alone: no undefined symbols beyond libc/libssl/libcrypto.
dlopen-check: $(OUT)/dlopen_check
	@$(SUITE) dlopen sh -c 'st=0; $(OUT)/dlopen_check $(abspath $(LIB_SO)) || st=1; \
	   c_tests/package/symbols_check.sh $(LIB_SO) || st=1; exit $$st'

install-check: $(LIB_SO)
	@$(SUITE) install env COROTLS_VERSION=$(VERSION) c_tests/package/install_check.sh

SUITES += dlopen install
