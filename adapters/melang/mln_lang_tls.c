/*
 * mln_lang_tls.c -- the Melang side of the `tls` extension (tls.so): the
 * only file that calls Melon / Melang.  Everything the module decides is
 * in tls_core.c; this file turns Melang arguments into mtls_args, mtls_rets
 * into Melang values, and gives the core its host: lang->lock, suspend /
 * continue, and the loop fd in lang->ev (spec melang-module.md §2, §3).
 *
 * Built against an installed stock Melon (`make melang MELON_PREFIX=...`),
 * linked with that Melon's libmelon_static.a (the module's own copy of
 * every mln_* it calls: the melang executable exports none) and
 * libcorotls.a; exports only `init` and `destroy` (tls.map).
 */
#include <string.h>

#include "mln_conf.h"
#include "mln_event.h"
#include "mln_lang.h"
#include "mln_log.h"
#include "mln_string.h"

#include "tls_core.h"

/* The per-coroutine record (a ctx resource: its free function runs when
 * the coroutine ends, is killed, or its lang is freed; lock held). */
#define CTX_RESOURCE "corotls.tls"

#define EXPORT __attribute__((visibility("default")))

static void glue_lock(void *h)
{
    mln_lang_mutex_lock((mln_lang_t *)h);
}

static void glue_unlock(void *h)
{
    mln_lang_mutex_unlock((mln_lang_t *)h);
}

static void glue_suspend(void *h, void *hctx)
{
    (void)h;
    mln_lang_ctx_suspend((mln_lang_ctx_t *)hctx);
}

/* A script value of the coroutine `ctx` (strings are copied into its
 * pool).  NULL when out of memory. */
static mln_lang_var_t *value_of(mln_lang_ctx_t *ctx, const struct mtls_ret *v)
{
    mln_string_t s;
    switch (v->kind) {
    case MTLS_RET_NIL:
        return mln_lang_var_create_nil(ctx, NULL);
    case MTLS_RET_TRUE:
        return mln_lang_var_create_true(ctx, NULL);
    case MTLS_RET_INT:
        return mln_lang_var_create_int(ctx, (mln_s64_t)v->i, NULL);
    case MTLS_RET_STRING:
        mln_string_nset(&s, (mln_u8ptr_t)v->s, v->len);
        return mln_lang_var_create_string(ctx, &s, NULL);
    default:
        return mln_lang_var_create_false(ctx, NULL);
    }
}

/* Called from a corotls callback inside mtls_dispatch, that is on the
 * Melang thread running the loop fd's handler (spec §4.3), lock held.
 * The value is built in the coroutine being resumed.  If it cannot be
 * built, the placeholder `false` stands. */
static void glue_resume(void *h, void *hctx, const struct mtls_ret *v)
{
    (void)h;
    mln_lang_ctx_t *ctx = hctx;
    mln_lang_var_t *var = value_of(ctx, v);
    if (var != NULL)
        mln_lang_ctx_set_ret_var(ctx, var);
    mln_lang_ctx_continue(ctx);
}

/* The loop fd is readable (Melon fd handler; lang->lock NOT held). */
static void on_loop_readable(mln_event_t *ev, int fd, void *data)
{
    (void)ev;
    (void)fd;
    mtls_dispatch((struct mtls_state *)data);
}

/* Once per lang, persistently, level-triggered; M_EV_NONBLOCK so that
 * Melon leaves the fd non-blocking. */
static int glue_watch(void *h, int fd, struct mtls_state *st)
{
    mln_lang_t *lang = h;
    return mln_event_fd_set(lang->ev, fd, M_EV_RECV | M_EV_NONBLOCK, M_EV_UNLIMITED, st, on_loop_readable) < 0
               ? -1
               : 0;
}

static void glue_unwatch(void *h, int fd)
{
    mln_lang_t *lang = h;
    mln_event_fd_set(lang->ev, fd, M_EV_CLR, M_EV_UNLIMITED, NULL, NULL);
}

static void ctx_record_free(void *data)
{
    mtls_ctx_gone((struct mtls_ctx *)data);
}

/* The coroutine's record, made on its first Import or call. */
static struct mtls_ctx *ctx_record(mln_lang_ctx_t *ctx, struct mtls_state *st)
{
    struct mtls_ctx *c = mln_lang_ctx_resource_fetch(ctx, CTX_RESOURCE);
    if (c != NULL)
        return c;
    if ((c = mtls_ctx_new(st, ctx)) == NULL)
        return NULL;
    if (mln_lang_ctx_resource_register(ctx, CTX_RESOURCE, c, ctx_record_free) < 0) {
        mtls_ctx_gone(c);
        return NULL;
    }
    return c;
}

static void arg_of(mln_lang_ctx_t *ctx, const char *name, struct mtls_arg *a)
{
    mln_string_t n;
    mln_lang_symbol_node_t *sym;
    memset(a, 0, sizeof *a);
    mln_string_nset(&n, (mln_u8ptr_t)name, strlen(name));
    sym = mln_lang_symbol_node_search(ctx, &n, 1);
    if (sym == NULL || sym->type != M_LANG_SYMBOL_VAR || sym->data.var == NULL || sym->data.var->val == NULL) {
        a->type = MTLS_ARG_NIL; /* arguments the script did not pass are nil */
        return;
    }
    mln_lang_val_t *val = sym->data.var->val;
    switch (val->type) {
    case M_LANG_VAL_TYPE_NIL:
        a->type = MTLS_ARG_NIL;
        break;
    case M_LANG_VAL_TYPE_INT:
        a->type = MTLS_ARG_INT;
        a->i = val->data.i;
        break;
    case M_LANG_VAL_TYPE_BOOL:
        a->type = MTLS_ARG_BOOL;
        a->b = val->data.b;
        break;
    case M_LANG_VAL_TYPE_STRING:
        a->type = MTLS_ARG_STRING;
        a->s = val->data.s->data;
        a->len = val->data.s->len;
        break;
    default:
        a->type = MTLS_ARG_OTHER;
        break;
    }
}

/* A process function (lang->lock held). */
static mln_lang_var_t *call(mln_lang_ctx_t *ctx, int fn)
{
    struct mtls_state *st = mtls_state_find(ctx->lang);
    struct mtls_ctx *c;
    struct mtls_arg args[MTLS_MAX_ARGS];
    mln_lang_var_t *pre, *var;

    if (st == NULL) {
        mln_lang_errmsg(ctx, "TLS resources unavailable.");
        return NULL;
    }
    if ((c = ctx_record(ctx, st)) == NULL) {
        mln_lang_errmsg(ctx, "No memory.");
        return NULL;
    }
    /* The placeholder first: once an operation is pending nothing may fail. */
    if ((pre = mln_lang_var_create_false(ctx, NULL)) == NULL) {
        mln_lang_errmsg(ctx, "No memory.");
        return NULL;
    }
    for (int i = 0; i < mtls_fns[fn].nargs; i++)
        arg_of(ctx, mtls_fns[fn].args[i], &args[i]);

    struct mtls_ret r = mtls_call(st, c, fn, args);
    switch (r.kind) {
    case MTLS_RET_ERROR:
        mln_lang_var_free(pre);
        mln_lang_errmsg(ctx, (char *)r.msg);
        return NULL;
    case MTLS_RET_SUSPENDED:
        return pre; /* becomes ctx->ret_var; the resume replaces it */
    case MTLS_RET_FALSE:
        if (r.msg != NULL)
            mln_lang_errmsg(ctx, (char *)r.msg);
        return pre;
    default:
        mln_lang_var_free(pre);
        if ((var = value_of(ctx, &r)) == NULL)
            mln_lang_errmsg(ctx, "No memory.");
        return var;
    }
}

#define PROCESS(name, fn)                                 \
    static mln_lang_var_t *name(mln_lang_ctx_t *ctx)      \
    {                                                     \
        return call(ctx, fn);                             \
    }
PROCESS(p_conf_new, MTLS_CONF_NEW)
PROCESS(p_conf_free, MTLS_CONF_FREE)
PROCESS(p_listen, MTLS_LISTEN)
PROCESS(p_accept, MTLS_ACCEPT)
PROCESS(p_connect, MTLS_CONNECT)
PROCESS(p_set_sni, MTLS_SET_SNI)
PROCESS(p_set_verify_host, MTLS_SET_VERIFY_HOST)
PROCESS(p_handshake, MTLS_HANDSHAKE)
PROCESS(p_send, MTLS_SEND)
PROCESS(p_recv, MTLS_RECV)
PROCESS(p_close, MTLS_CLOSE)

static const mln_lang_internal processes[MTLS_NFN] = {
    [MTLS_CONF_NEW] = p_conf_new,
    [MTLS_CONF_FREE] = p_conf_free,
    [MTLS_LISTEN] = p_listen,
    [MTLS_ACCEPT] = p_accept,
    [MTLS_CONNECT] = p_connect,
    [MTLS_SET_SNI] = p_set_sni,
    [MTLS_SET_VERIFY_HOST] = p_set_verify_host,
    [MTLS_HANDSHAKE] = p_handshake,
    [MTLS_SEND] = p_send,
    [MTLS_RECV] = p_recv,
    [MTLS_CLOSE] = p_close,
};

/* Add function `fn` (its parameters nil by default) to the module object. */
static int add_function(mln_lang_ctx_t *ctx, mln_lang_object_t *obj, int fn)
{
    const struct mtls_fn_desc *d = &mtls_fns[fn];
    mln_lang_func_detail_t *func;
    mln_lang_val_t *val;
    mln_lang_var_t *var;
    mln_string_t name;

    if ((func = mln_lang_func_detail_new(ctx, M_FUNC_INTERNAL, processes[fn], NULL, NULL)) == NULL)
        return -1;
    for (int i = 0; i < d->nargs; i++) {
        mln_string_nset(&name, (mln_u8ptr_t)d->args[i], strlen(d->args[i]));
        if ((val = mln_lang_val_new(ctx, M_LANG_VAL_TYPE_NIL, NULL)) == NULL) {
            mln_lang_func_detail_free(func);
            return -1;
        }
        if ((var = mln_lang_var_new(ctx, &name, M_LANG_VAR_NORMAL, val, NULL)) == NULL) {
            mln_lang_val_free(val);
            mln_lang_func_detail_free(func);
            return -1;
        }
        if (mln_lang_func_detail_arg_append(func, var) < 0) {
            mln_lang_var_free(var);
            mln_lang_func_detail_free(func);
            return -1;
        }
    }
    if ((val = mln_lang_val_new(ctx, M_LANG_VAL_TYPE_FUNC, func)) == NULL) {
        mln_lang_func_detail_free(func);
        return -1;
    }
    mln_string_nset(&name, (mln_u8ptr_t)d->name, strlen(d->name));
    if ((var = mln_lang_var_new(ctx, &name, M_LANG_VAR_NORMAL, val, NULL)) == NULL) {
        mln_lang_val_free(val);
        return -1;
    }
    if (mln_lang_set_member_add(ctx->pool, obj->members, var) < 0) {
        mln_lang_var_free(var);
        return -1;
    }
    return 0;
}

/* Import('tls'), in every coroutine, every time (lang->lock held). */
EXPORT mln_lang_var_t *init(mln_lang_ctx_t *ctx, mln_conf_t *cf)
{
    struct mtls_host host = {
        .host = ctx->lang,
        .lock = glue_lock,
        .unlock = glue_unlock,
        .suspend = glue_suspend,
        .resume = glue_resume,
        .watch = glue_watch,
        .unwatch = glue_unwatch,
    };
    const char *err = NULL;
    struct mtls_state *st;
    mln_lang_var_t *obj;

    mln_log_init(cf); /* this module's own copy of Melon's logger */
    if ((st = mtls_state_get(ctx->lang, &host, &err)) == NULL) {
        mln_lang_errmsg(ctx, (char *)err);
        return NULL;
    }
    if (ctx_record(ctx, st) == NULL || (obj = mln_lang_var_create_obj(ctx, NULL, NULL)) == NULL) {
        mln_lang_errmsg(ctx, "No memory.");
        return NULL;
    }
    for (int fn = 0; fn < MTLS_NFN; fn++) {
        if (add_function(ctx, mln_lang_var_val_get(obj)->data.obj, fn) < 0) {
            mln_lang_var_free(obj);
            mln_lang_errmsg(ctx, "No memory.");
            return NULL;
        }
    }
    return obj;
}

/* mln_lang_free, just before dlclose (lang->lock held, every coroutine
 * already freed).  Touches no lang resource (spec §3.6): the resource tree
 * is being walked.  Idempotent. */
EXPORT void destroy(mln_lang_t *lang)
{
    mtls_state_destroy(lang);
}
