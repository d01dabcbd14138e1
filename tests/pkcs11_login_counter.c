/* A PKCS#11 module for tests that wraps another one (PKCS11_REAL_MODULE) and appends a line to
 * PKCS11_LOGIN_LOG for every C_Login call, so a test can count the PIN attempts a token sees.
 * It hands out the real module's function list with one pointer replaced; nothing else changes.
 * Built by tests/softhsm.py with the system's cc (no PKCS#11 headers needed). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long ulong_t;
typedef ulong_t (*login_fn)(ulong_t session, ulong_t user, unsigned char *pin, ulong_t len);
typedef struct { unsigned char major, minor; void *fn[68]; } function_list;
typedef ulong_t (*get_list_fn)(function_list **);

enum { C_LOGIN = 18 }; /* position of C_Login in CK_FUNCTION_LIST (PKCS#11 v2.40 section 5.15) */

static function_list wrapped;
static login_fn real_login;

static ulong_t counting_login(ulong_t session, ulong_t user, unsigned char *pin, ulong_t len) {
    const char *log = getenv("PKCS11_LOGIN_LOG");
    if (log) {
        FILE *f = fopen(log, "a");
        if (f) { fprintf(f, "login user=%lu\n", user); fclose(f); }
    }
    return real_login(session, user, pin, len);
}

ulong_t C_GetFunctionList(function_list **out) {
    void *real = dlopen(getenv("PKCS11_REAL_MODULE"), RTLD_NOW | RTLD_LOCAL);
    if (!real) return 5; /* CKR_GENERAL_ERROR */
    get_list_fn get = (get_list_fn) dlsym(real, "C_GetFunctionList");
    function_list *list = NULL;
    ulong_t rv = get ? get(&list) : 5;
    if (rv != 0) return rv;
    memcpy(&wrapped, list, sizeof wrapped);
    real_login = (login_fn) list->fn[C_LOGIN];
    wrapped.fn[C_LOGIN] = (void *) counting_login;
    *out = &wrapped;
    return 0;
}
