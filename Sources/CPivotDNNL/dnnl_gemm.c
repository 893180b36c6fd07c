// oneDNN matrix products with a shape-keyed primitive cache. Creating a oneDNN primitive descriptor costs
// tens of microseconds, as much as a small product, so every (transposes, sizes, leading dimensions,
// alpha, beta, bias, type) combination is created once and kept for the process's life; the cache
// is bounded, and past its bound a product creates and releases its primitive.
#include "pivot_dnnl.h"
#include "pivot_kernels.h"

#include <dlfcn.h>
#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ta, tb, has_bias, dtype;
    long m, n, k, lda, ldb, ldc;
    uint32_t alpha, beta;
} key_t_;

typedef struct entry {
    key_t_ key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md, scratch_md;
    size_t scratch_bytes;
    struct entry *next;
} entry_t;

#define BUCKETS 1024
#define MAX_ENTRIES 8192
static entry_t *table[BUCKETS];
static long entries;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void) {
    // PIVOT_MAX_ISA caps oneDNN's JIT too; it must be set before the first primitive is made.
    int cap = pv_isa_cap();
    if (cap < 2) dnnl_set_max_cpu_isa(cap == 1 ? dnnl_cpu_isa_avx2 : dnnl_cpu_isa_sse41);
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

// The calling thread's stream and scratch memory (primitives use user-managed scratchpads, so that several
// threads can run the same primitive at once).
static __thread dnnl_stream_t thread_stream;
static __thread void *thread_scratch;
static __thread size_t thread_scratch_bytes;

// Products run on the calling thread alone: pivot splits work between its own workers (an OpenMP team of
// oneDNN's would compete with them for the cores), so each calling thread's OpenMP limit is set to 1.
static void (*set_omp_threads)(int);
static int (*get_omp_threads)(void);
static pthread_once_t omp_once = PTHREAD_ONCE_INIT;
static void find_omp(void) {
    set_omp_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    get_omp_threads = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
}

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static size_t hash_key(const key_t_ *k) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)k;
    for (size_t i = 0; i < sizeof(*k); i++) { h ^= p[i]; h *= 1099511628211ull; }
    return (size_t)(h % BUCKETS);
}

static int matrix_md(dnnl_memory_desc_t *md, long rows, long cols, long ld, int trans, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static dnnl_status_t create_entry(const key_t_ *k, entry_t *e) {
    dnnl_data_type_t dt = k->dtype ? dnnl_bf16 : dnnl_f32;
    dnnl_status_t s;
    memset(e, 0, sizeof(*e));
    e->key = *k;
    if ((s = matrix_md(&e->a_md, k->m, k->k, k->lda, k->ta, dt)) != dnnl_success) return s;
    if ((s = matrix_md(&e->b_md, k->k, k->n, k->ldb, k->tb, dt)) != dnnl_success) return s;
    if ((s = matrix_md(&e->c_md, k->m, k->n, k->ldc, 0, dnnl_f32)) != dnnl_success) return s;
    if (k->has_bias) {
        dnnl_dims_t bd = {1, k->n};
        if ((s = dnnl_memory_desc_init_by_tag(&e->bias_md, 2, bd, dnnl_f32, dnnl_ab)) != dnnl_success) return s;
    }
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &e->a_md, &e->b_md, k->has_bias ? &e->bias_md : NULL, &e->c_md))
        != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) return s;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    float alpha; memcpy(&alpha, &k->alpha, 4);
    float beta; memcpy(&beta, &k->beta, 4);
    if (alpha != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    if (beta != 0.0f) {
        dnnl_post_ops_t ops;
        dnnl_post_ops_create(&ops);
        dnnl_post_ops_append_sum(ops, beta);
        dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return s;
    const dnnl_memory_desc_t *sm = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (sm) { e->scratch_md = *sm; e->scratch_bytes = dnnl_memory_desc_get_size(sm); }
    s = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

static dnnl_status_t execute(entry_t *e, const void *a, const void *b, float *c, const float *bias) {
    dnnl_status_t s;
    if (!thread_stream && (s = dnnl_stream_create(&thread_stream, engine, dnnl_stream_default_flags)) != dnnl_success)
        return s;
    if (e->scratch_bytes > thread_scratch_bytes) {
        free(thread_scratch);
        thread_scratch = aligned_alloc(64, (e->scratch_bytes + 63) / 64 * 64);
        thread_scratch_bytes = thread_scratch ? e->scratch_bytes : 0;
        if (!thread_scratch) return dnnl_out_of_memory;
    }
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, mbias = NULL, ms = NULL;
    dnnl_exec_arg_t args[5];
    int n = 0;
    if ((s = dnnl_memory_create(&ma, &e->a_md, engine, (void *)a)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&mb, &e->b_md, engine, (void *)b)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&mc, &e->c_md, engine, c)) != dnnl_success) goto done;
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, ma};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mb};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mc};
    if (e->key.has_bias) {
        if ((s = dnnl_memory_create(&mbias, &e->bias_md, engine, (void *)bias)) != dnnl_success) goto done;
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mbias};
    }
    if (e->scratch_bytes) {
        if ((s = dnnl_memory_create(&ms, &e->scratch_md, engine, thread_scratch)) != dnnl_success) goto done;
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, ms};
    }
    if ((s = dnnl_primitive_execute(e->prim, thread_stream, n, args)) != dnnl_success) goto done;
    s = dnnl_stream_wait(thread_stream);
done:
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (mbias) dnnl_memory_destroy(mbias);
    if (ms) dnnl_memory_destroy(ms);
    return s;
}

static int gemm(int dtype, int ta, int tb, long m, long n, long k, float alpha, const void *a, long lda,
                const void *b, long ldb, float beta, float *c, long ldc, const float *bias) {
    if (m <= 0 || n <= 0) return 0;
    pthread_once(&engine_once, make_engine);
    pthread_once(&omp_once, find_omp);
    if (!engine) return dnnl_runtime_error;
    if (set_omp_threads && get_omp_threads && get_omp_threads() != 1) set_omp_threads(1);
    key_t_ key;
    memset(&key, 0, sizeof(key));  // padding too: the key is hashed and compared as bytes
    key.ta = ta != 0; key.tb = tb != 0; key.has_bias = bias != NULL; key.dtype = dtype;
    key.m = m; key.n = n; key.k = k; key.lda = lda; key.ldb = ldb; key.ldc = ldc;
    key.alpha = fbits(alpha); key.beta = fbits(beta == 0.0f ? 0.0f : beta);
    size_t h = hash_key(&key);
    pthread_mutex_lock(&table_lock);
    entry_t *e = table[h];
    while (e && memcmp(&e->key, &key, sizeof(key)) != 0) e = e->next;
    pthread_mutex_unlock(&table_lock);
    if (e) return execute(e, a, b, c, bias);
    entry_t *fresh = malloc(sizeof(entry_t));
    if (!fresh) return dnnl_out_of_memory;
    dnnl_status_t s = create_entry(&key, fresh);
    if (s != dnnl_success) { free(fresh); return s; }
    pthread_mutex_lock(&table_lock);
    entry_t *again = table[h];
    while (again && memcmp(&again->key, &key, sizeof(key)) != 0) again = again->next;
    int keep = !again && entries < MAX_ENTRIES;
    if (keep) { fresh->next = table[h]; table[h] = fresh; entries++; }
    pthread_mutex_unlock(&table_lock);
    s = execute(again ? again : fresh, a, b, c, bias);
    if (!keep) { dnnl_primitive_destroy(fresh->prim); free(fresh); }
    return s;
}

int pv_gemm_bf16(int trans_a, int trans_b, long m, long n, long k, float alpha, const uint16_t *a, long lda,
                 const uint16_t *b, long ldb, float beta, float *c, long ldc, const float *bias) {
    return gemm(1, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
}

int pv_gemm_f32_dnnl(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                     const float *b, long ldb, float beta, float *c, long ldc, const float *bias) {
    return gemm(0, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
}

static char bf16_impl[128];
static int bf16_usable = -1;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static void probe(void) {
    pthread_once(&engine_once, make_engine);
    bf16_usable = 0;
    if (!engine) return;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t ad = {64, 64};
    dnnl_memory_desc_init_by_tag(&a, 2, ad, dnnl_bf16, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&b, 2, ad, dnnl_bf16, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&c, 2, ad, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t d;
    if (dnnl_matmul_desc_init(&d, &a, &b, NULL, &c) != dnnl_success) return;
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, &d, NULL, engine, NULL) != dnnl_success) return;
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (impl) { strncpy(bf16_impl, impl, sizeof(bf16_impl) - 1); }
    // oneDNN's reference (non-JIT) kernels would be far slower than fp32 OpenBLAS: not usable.
    bf16_usable = impl && strncmp(impl, "ref", 3) != 0;
    dnnl_primitive_desc_destroy(pd);
}

int pv_dnnl_bf16_usable(void) { pthread_once(&probe_once, probe); return bf16_usable; }
const char *pv_dnnl_bf16_impl(void) { pthread_once(&probe_once, probe); return bf16_impl; }

const char *pv_dnnl_version(void) {
    static char text[32];
    const dnnl_version_t *v = dnnl_version();
    if (!text[0]) snprintf(text, sizeof(text), "%d.%d.%d", v->major, v->minor, v->patch);
    return text;
}
