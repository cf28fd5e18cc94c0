# corotls: example programs, built into target/examples/.
# Included by the top-level Makefile; each program adds itself to EXAMPLES.
