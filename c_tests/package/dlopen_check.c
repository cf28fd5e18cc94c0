/* libcorotls.so must load with RTLD_NOW in a process that has nothing else:
 * every undefined symbol must come from libc, libssl or libcrypto. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s /path/to/libcorotls.so\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        printf("FAIL - dlopen(RTLD_NOW): %s\n0 passed, 1 failed\n", dlerror());
        return 1;
    }
    const char *(*version)(void) = (const char *(*)(void))dlsym(h, "corotls_version");
    if (version == NULL) {
        printf("FAIL - corotls_version not exported\n0 passed, 1 failed\n");
        return 1;
    }
    printf("ok - dlopen(RTLD_NOW) %s, corotls_version() = %s\n1 passed, 0 failed\n", argv[1], version());
    dlclose(h);
    return 0;
}
