# corotls: the Melon face (libcorotls_melon.so / .a) and its checks.
# Included by the top-level Makefile (after c_tests/melon/melon_host/melon.mk).
#
#   make lib                 also builds the face
#   make melon-face-check    nm checks, layout proof against the Rust report,
#                            plain / TLS / Melang-usage tests, then each test
#                            program once more under $(VALGRIND)
#
# The face is built by its own cargo invocation: a --workspace build would
# unify the engine's features and export the corotls_* C ABI from it too.
# Test programs link the face FIRST and the melon_host fixture archive after
# it, so the archive supplies the face's mln_alloc_* / mln_chain_* imports
# (spec melon.md §7.5), then libssl/libcrypto.

MELON_FACE_SO   := $(RELEASE)/libcorotls_melon.so
MELON_FACE_A    := $(RELEASE)/libcorotls_melon.a
# FORCE: cargo decides what is stale (see the top Makefile).  Its own target
# directory: the engine it links is built without the capi feature, and in
# target/ that build and `-p corotls` would overwrite each other's
# libcorotls.so in turn, each relinking the library (and everything made
# from it) again.  The face's files are copied into $(RELEASE) when they
# changed.
MELON_CARGO_DIR := target/melon-face
$(MELON_FACE_SO) $(MELON_FACE_A): FORCE
	@$(CARGO) build --release -p corotls-melon --target-dir $(MELON_CARGO_DIR)
	@mkdir -p $(RELEASE)
	@for f in libcorotls_melon.so libcorotls_melon.a; do \
	  cmp -s $(MELON_CARGO_DIR)/release/$$f $(RELEASE)/$$f || cp $(MELON_CARGO_DIR)/release/$$f $(RELEASE)/$$f; done
	@ln -sf libcorotls_melon.so $(RELEASE)/libcorotls_melon.so.0

lib: $(MELON_FACE_SO)

MELON_FACE_CFLAGS := $(C_CFLAGS) -pthread -DMLN_TLS -I include/melon -I $(MELON_HOST_INC) -I c_tests/melon $(HARNESS_INC)
MELON_FACE_LINK   := -L $(RELEASE) -Wl,-rpath,$(abspath $(RELEASE)) -lcorotls_melon $(MELON_HOST_LIB) \
                     -lssl -lcrypto -lpthread
MELON_FACE_DEPS   := $(MELON_FACE_SO) $(MELON_HOST_LIB) c_tests/melon/melon_util.h include/melon/mln_connection.h \
                     $(MELON_HOST_HDRS) $(HARNESS_OBJ) $(HARNESS_HDR)
MELON_FACE_TESTS  := $(OUT)/melon_plain $(OUT)/melon_tls $(OUT)/melon_lang

$(OUT)/melon_%: c_tests/melon/melon_%.c $(MELON_FACE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(MELON_FACE_CFLAGS) -o $@ $< $(HARNESS_OBJ) $(MELON_FACE_LINK)

# The layout proof: C measurements compared with what the Rust face reports.
$(OUT)/melon_layout_face: c_tests/melon/melon_layout.c $(MELON_FACE_DEPS) $(MELON_HOST_DIR)/layout_check.h
	@mkdir -p $(@D)
	$(CC) $(MELON_FACE_CFLAGS) -DCOROTLS_MELON_LAYOUT_REPORT -o $@ $< $(MELON_FACE_LINK)

.PHONY: melon-face-check melon-face-build
melon-face-build: $(MELON_FACE_TESTS) $(OUT)/melon_layout_face $(MELON_FACE_A)

melon-face-check: melon-face-build $(HARNESS_CERTS) $(LIB_SO)
	@$(SUITE) melon-nm bash c_tests/melon/melon_nm.sh $(MELON_FACE_SO) $(MELON_FACE_A) $(LIB_SO)
	@$(SUITE) melon-layout $(OUT)/melon_layout_face
	@COROTLS_CERTDIR=$(HARNESS_CERTDIR) c_tests/harness/run.sh --suite melon-face --label "Melon face C tests" \
	  $(MELON_FACE_TESTS)
	@COROTLS_CERTDIR=$(HARNESS_CERTDIR) MELON_TEST_LIGHT=1 VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind \
	  --suite melon-face-valgrind --label "Melon face C tests" $(MELON_FACE_TESTS)

CHECKS += melon-face-check
SUITES += melon-nm melon-layout melon-face melon-face-valgrind
