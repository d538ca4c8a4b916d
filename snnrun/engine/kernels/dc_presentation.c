/* Diehl & Cook (2015) presentations on the CPU: every time step of a batch in one C loop.

   The network is X (input) -> Ae (adaptive LIF, one spike per step) -> Ai (LIF) -> Ae (lateral
   inhibition), all connections delay 1, with post_pre STDP on X -> Ae while learning. Each step
   does exactly what snnrun's eager step does (snnrun/engine/network.py, neurons/lif.py,
   neurons/adaptive.py, learning/stdp.py), in the same float32 operations and order:

     I_e = s_X(t-1) @ W + w_lat (sum(s_i) - s_i)(t-1)      I_i = w_ei s_e(t-1)
     v <- v d + rest (1 - d);  v <- v + I where not refractory;  r <- r - dt
     fired = v >= thresh (+ theta);  v <- reset, r <- refrac where fired;  v >= lbound
     theta <- theta d_theta (before);  theta <- theta + theta_plus sum_b fired (after)  (learning)
     one spike: per sample the crossing neuron with the largest key fires (keys: torch.rand)
     traces x <- x d_x, then = scale where s (or + scale s)
     STDP (hard bounds): W <- clamp(W - nu0 s_pre^T x_post + nu1 x_pre^T s_post, wmin, wmax)

   Sparsity makes it cheap: the input product adds the rows of W of the inputs that spiked (in
   increasing index order: what BLAS does for one sample), and the STDP update touches only the
   rows of spiking inputs and the columns of spiking neurons, so only those are clamped (all of W
   at a presentation's first step, as normalisation may have left weights outside the bounds).
   Rounding follows ATen's: addmm's update is w + (alpha * product), add_/sub_ with alpha one fma.
   Build with -ffp-contract=off so the compiler fuses nothing else. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *v, *r, *s, *x;       /* (B, n) state; x may be NULL (no traces) */
    float *count;               /* (B, n) spike counts to add to, or NULL */
    float decay, leak, thresh, reset, refrac, lbound;
    int has_lbound, traces, additive;
    float trace_decay, trace_scale;
} lif_group;

typedef struct {
    int T, B, n_in, n;
    int t0;                      /* first step to run (a call resumes after a key refill) */
    const uint8_t *inp;          /* (T, B, n_in) input spikes, 0/1 */
    float *w;                    /* (n_in, n) X -> Ae weights */
    float *sx, *xx, *count_x;    /* input group: spikes, traces (or NULL), counts (or NULL) */
    int x_traces, x_additive;
    float x_trace_decay, x_trace_scale;
    lif_group e, i;
    float *theta;                /* (n,) adaptive thresholds of Ae */
    float theta_decay, theta_plus;
    int one_spike;
    const float *w_ei;           /* (n,) one-to-one Ae -> Ai weights */
    float w_lat;                 /* lateral Ai -> Ae weight */
    float dt;
    int adapt;                   /* Ae in training mode: theta adapts */
    int stdp;                    /* learning: the post_pre rule on X -> Ae updates W every step */
    int reduction;               /* 0 sum or mean (alphas scaled by the caller), 2 owner */
    float alpha0, alpha1;        /* -nu0 (* 1/B for mean), nu1 (* 1/B): ATen's float alphas */
    float wmin, wmax;
    int64_t *owner;              /* (n,) owning sample per neuron, -1: none */
    const float *keys;           /* (n_keys, B, n) uniform keys for the one-spike choice */
    int n_keys, keys_used;       /* in: blocks available; out: blocks used */
    float *cur_e, *cur_i, *fired, *acc;   /* scratch (B, n), (B, n), (B, n), (n) */
    int *list;                   /* scratch (max(n_in, n)) */
    int *col_hit;                /* scratch (n) */
    int *spikes;                 /* scratch (2, B, n_in): the input spikes' indices, last step and this one */
    int *n_spikes;               /* scratch (2, B) */
    int *owner_start, *owner_fill;   /* scratch (B + 1), (B) */
} dc_args;

static inline float clampf(float v, float lo, float hi) {
    /* torch.clamp_: min(max(v, lo), hi) */
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

static void trace_update(float *x, const float *s, int m, float d, float scale, int additive) {
    if (additive) {
        for (int k = 0; k < m; k++) {
            float a = x[k] * d;
            float b = scale * s[k];
            x[k] = a + b;
        }
    } else {
        for (int k = 0; k < m; k++) {
            float a = x[k] * d;
            x[k] = s[k] > 0.0f ? scale : a;
        }
    }
}

/* leak, integrate, fire, reset of one LIF group; cur: its input; threshold + theta (or NULL).
   Written without branches so the compiler vectorises it. */
static void lif_step(lif_group *g, const float *cur, const float *theta, float dt, int B, int n, float *fired) {
    const float decay = g->decay, leak = g->leak, thresh = g->thresh, reset = g->reset, refrac = g->refrac;
    const float lb = g->has_lbound ? g->lbound : -INFINITY;
    for (int b = 0; b < B; b++) {
        float *restrict v = g->v + (size_t)b * n, *restrict r = g->r + (size_t)b * n;
        float *restrict f = fired + (size_t)b * n;
        const float *restrict c = cur + (size_t)b * n;
        for (int j = 0; j < n; j++) {
            float vj = v[j] * decay;
            vj = vj + leak;
            vj = vj + (r[j] > 0.0f ? 0.0f : c[j]);
            float rj = r[j] - dt;
            const float th = theta ? theta[j] + thresh : thresh;
            const int fj = vj >= th;
            rj = fj ? refrac : rj;
            vj = fj ? reset : vj;
            vj = vj < lb ? lb : vj;   /* clamp_min(lbound); -inf: none */
            v[j] = vj; r[j] = rj; f[j] = fj ? 1.0f : 0.0f;
        }
    }
}

/* the indices of the non-zero bytes of row[0..m) (input spikes are sparse: skip zero words) */
static int nonzero_bytes(const uint8_t *row, int m, int *out) {
    int c = 0, i = 0;
    for (; i + 8 <= m; i += 8) {
        uint64_t word;
        memcpy(&word, row + i, 8);
        if (!word) continue;
        for (int k = 0; k < 8; k++)
            if (row[i + k]) out[c++] = i + k;
    }
    for (; i < m; i++)
        if (row[i]) out[c++] = i;
    return c;
}

/* Run steps t0 .. T-1. Returns the step to resume from: T when done, or t+1 < T after a step t
   that used the last available key block (the caller draws more and calls again). */
int dc_run(dc_args *a) {
    const int B = a->B, n = a->n, n_in = a->n_in;
    const size_t Bn = (size_t)B * n;
    /* spike index lists: `last` holds the last step's (from sx, the input group's spikes), `now` this step's */
    int *last = a->spikes, *now = a->spikes + (size_t)B * n_in;
    int *n_last = a->n_spikes, *n_now = a->n_spikes + B;
    for (int b = 0; b < B; b++) {
        const float *sx = a->sx + (size_t)b * n_in;
        int c = 0;
        for (int i = 0; i < n_in; i++)
            if (sx[i] != 0.0f) last[(size_t)b * n_in + c++] = i;
        n_last[b] = c;
    }
    for (int t = a->t0; t < a->T; t++) {
        /* -- delayed currents from the last step's spikes -- */
        for (int b = 0; b < B; b++) {
            float *ce = a->cur_e + (size_t)b * n, *ci = a->cur_i + (size_t)b * n;
            const int *li = last + (size_t)b * n_in;
            memset(ce, 0, sizeof(float) * n);
            /* increasing index: the order BLAS sums one sample in; four rows per pass over ce */
            int q = 0;
            for (; q + 4 <= n_last[b]; q += 4) {
                const float *w0 = a->w + (size_t)li[q] * n, *w1 = a->w + (size_t)li[q + 1] * n;
                const float *w2 = a->w + (size_t)li[q + 2] * n, *w3 = a->w + (size_t)li[q + 3] * n;
                for (int j = 0; j < n; j++) ce[j] = ((ce[j] + w0[j]) + w1[j] + w2[j]) + w3[j];
            }
            for (; q < n_last[b]; q++) {
                const float *wi = a->w + (size_t)li[q] * n;
                for (int j = 0; j < n; j++) ce[j] = ce[j] + wi[j];
            }
            const float *si = a->i.s + (size_t)b * n, *se = a->e.s + (size_t)b * n;
            float total = 0.0f;
            for (int j = 0; j < n; j++) total += si[j];   /* small whole numbers: exact in any order */
            for (int j = 0; j < n; j++) {
                float lat = a->w_lat * (total - si[j]);
                ce[j] = ce[j] + lat;
                ci[j] = se[j] * a->w_ei[j];
            }
        }
        /* -- input group -- */
        const uint8_t *in_t = a->inp + (size_t)t * B * n_in;
        for (int b = 0; b < B; b++) {
            float *sx = a->sx + (size_t)b * n_in;
            int *ln = now + (size_t)b * n_in;
            const int *ll = last + (size_t)b * n_in;
            n_now[b] = nonzero_bytes(in_t + (size_t)b * n_in, n_in, ln);
            for (int q = 0; q < n_last[b]; q++) sx[ll[q]] = 0.0f;
            for (int q = 0; q < n_now[b]; q++) sx[ln[q]] = 1.0f;
        }
        if (a->x_traces) {
            if (a->x_additive) {
                trace_update(a->xx, a->sx, B * n_in, a->x_trace_decay, a->x_trace_scale, 1);
            } else {  /* x <- x d everywhere, then = scale where spiking (masked_fill) */
                const size_t m = (size_t)B * n_in;
                for (size_t k = 0; k < m; k++) a->xx[k] = a->xx[k] * a->x_trace_decay;
                for (int b = 0; b < B; b++)
                    for (int q = 0; q < n_now[b]; q++) a->xx[(size_t)b * n_in + now[(size_t)b * n_in + q]] = a->x_trace_scale;
            }
        }
        /* -- excitatory group -- */
        if (a->adapt)
            for (int j = 0; j < n; j++) a->theta[j] = a->theta[j] * a->theta_decay;
        lif_step(&a->e, a->cur_e, a->theta, a->dt, B, n, a->fired);
        int any = 0;
        if (a->adapt) {  /* theta += theta_plus * (crossings summed over the batch, in sample order) */
            float *c = a->acc;
            memcpy(c, a->fired, sizeof(float) * n);
            for (int b = 1; b < B; b++) {
                const float *f = a->fired + (size_t)b * n;
                for (int j = 0; j < n; j++) c[j] = c[j] + f[j];
            }
            for (int j = 0; j < n; j++) {
                float inc = a->theta_plus * c[j];
                a->theta[j] = a->theta[j] + inc;
            }
        }
        for (size_t k = 0; k < Bn; k++) any |= a->fired[k] != 0.0f;
        memcpy(a->e.s, a->fired, sizeof(float) * Bn);
        if (a->one_spike && any) {
            const float *key = a->keys + (size_t)a->keys_used * Bn;
            a->keys_used++;
            for (int b = 0; b < B; b++) {
                const float *f = a->fired + (size_t)b * n, *kb = key + (size_t)b * n;
                float best = -2.0f;
                int win = 0;
                for (int j = 0; j < n; j++) {  /* torch.argmax: the first of equal maxima */
                    float kj = f[j] == 0.0f ? -1.0f : kb[j];
                    if (kj > best) { best = kj; win = j; }
                }
                float *s = a->e.s + (size_t)b * n;
                memset(s, 0, sizeof(float) * n);
                s[win] = 1.0f * f[win];
            }
        }
        if (a->e.traces) trace_update(a->e.x, a->e.s, (int)Bn, a->e.trace_decay, a->e.trace_scale, a->e.additive);
        /* -- inhibitory group -- */
        lif_step(&a->i, a->cur_i, NULL, a->dt, B, n, a->i.s);
        if (a->i.traces) trace_update(a->i.x, a->i.s, (int)Bn, a->i.trace_decay, a->i.trace_scale, a->i.additive);
        /* -- STDP on X -> Ae: the whole update first, then the clamp (as after_update) -- */
        if (a->stdp) {
            float *w = a->w;
            int n_rows = 0;           /* rows and columns the update touched: the ones to clamp */
            memset(a->col_hit, 0, sizeof(int) * n);
            if (a->reduction == 2 && B > 1) {
                /* owner: each neuron learns from the first sample that made it fire (argmax over
                   the batch: the first of equal maxima) */
                float *m = a->acc;
                int *first = a->col_hit;
                memcpy(m, a->e.s, sizeof(float) * n);
                memset(first, 0, sizeof(int) * n);
                for (int b = 1; b < B; b++) {
                    const float *s = a->e.s + (size_t)b * n;
                    for (int j = 0; j < n; j++)
                        if (s[j] > m[j]) { m[j] = s[j]; first[j] = b; }
                }
                for (int j = 0; j < n; j++)
                    if (m[j] > 0.0f && a->owner[j] < 0) a->owner[j] = first[j];
                /* the owned columns with a non-zero trace, grouped by owner; pot: the owner fired now */
                int *start = a->owner_start, *cols = a->list, *pot = a->col_hit;
                memset(start, 0, sizeof(int) * (B + 1));
                for (int j = 0; j < n; j++) {
                    pot[j] = 0;
                    if (a->owner[j] < 0) continue;
                    const size_t k = (size_t)a->owner[j] * n + j;
                    pot[j] = a->e.s[k] != 0.0f && a->alpha1 != 0.0f;
                    if (a->e.x[k] != 0.0f) start[a->owner[j] + 1]++;
                }
                for (int b = 0; b < B; b++) start[b + 1] += start[b];
                memset(a->owner_fill, 0, sizeof(int) * B);
                for (int j = 0; j < n; j++) {
                    if (a->owner[j] < 0 || a->e.x[(size_t)a->owner[j] * n + j] == 0.0f) continue;
                    cols[a->owner_fill[a->owner[j]]++ + start[a->owner[j]]] = j;
                }
                /* depression, row by row (w.sub_(s_pre x_own, alpha=nu0): one fma each); an entry
                   whose column is not potentiated now is final: clamp it at once */
                if (a->alpha0 != 0.0f) {
                    for (int b = 0; b < B; b++) {
                        const int c0 = start[b], c1 = start[b + 1];
                        if (c0 == c1) continue;
                        const float *xo = a->e.x + (size_t)b * n;
                        const int *ln = now + (size_t)b * n_in;
                        for (int p = 0; p < n_now[b]; p++) {  /* rows of spiking inputs (s_pre = 1) */
                            float *wi = w + (size_t)ln[p] * n;
                            for (int q = c0; q < c1; q++) {
                                const int j = cols[q];
                                float v = fmaf(a->alpha0, 1.0f * xo[j], wi[j]);
                                wi[j] = pot[j] ? v : clampf(v, a->wmin, a->wmax);
                            }
                        }
                    }
                }
                /* potentiation of the columns whose owner spiked now (w.add_(x_pre s_own, alpha=nu1)),
                   then their clamp */
                for (int j = 0; j < n; j++) {
                    if (!pot[j]) continue;
                    const int o = (int)a->owner[j];
                    const float s_own = a->e.s[(size_t)o * n + j];
                    const float *xp = a->xx + (size_t)o * n_in;
                    for (int i = 0; i < n_in; i++) {
                        const size_t k = (size_t)i * n + j;
                        w[k] = clampf(fmaf(a->alpha1, xp[i] * s_own, w[k]), a->wmin, a->wmax);
                    }
                }
            } else {
                /* sum (mean: alpha / B) over the batch, as two addmm_: W + alpha0 (s_pre^T x_post),
                   then + alpha1 (x_pre^T s_post) */
                if (a->alpha0 != 0.0f) {
                    for (int i = 0; i < n_in; i++) {
                        int hit = 0;
                        for (int b = 0; b < B; b++) hit |= a->sx[(size_t)b * n_in + i] != 0.0f;
                        if (!hit) continue;
                        a->list[n_rows++] = i;
                        memset(a->acc, 0, sizeof(float) * n);
                        for (int b = 0; b < B; b++) {
                            float sb = a->sx[(size_t)b * n_in + i];
                            if (sb == 0.0f) continue;
                            const float *xb = a->e.x + (size_t)b * n;
                            for (int j = 0; j < n; j++) a->acc[j] = a->acc[j] + sb * xb[j];
                        }
                        float *wi = w + (size_t)i * n;
                        for (int j = 0; j < n; j++) {
                            float d = a->alpha0 * a->acc[j];
                            wi[j] = wi[j] + d;
                        }
                    }
                }
                if (a->alpha1 != 0.0f) {
                    for (int j = 0; j < n; j++) {
                        int hit = 0;
                        for (int b = 0; b < B; b++) hit |= a->e.s[(size_t)b * n + j] != 0.0f;
                        if (!hit) continue;
                        a->col_hit[j] = 2;
                        for (int i = 0; i < n_in; i++) {
                            float p = 0.0f;
                            for (int b = 0; b < B; b++) p = p + a->xx[(size_t)b * n_in + i] * a->e.s[(size_t)b * n + j];
                            size_t k = (size_t)i * n + j;
                            float d = a->alpha1 * p;
                            w[k] = w[k] + d;
                        }
                    }
                }
                for (int r = 0; r < n_rows; r++) {
                    float *wi = w + (size_t)a->list[r] * n;
                    for (int j = 0; j < n; j++) wi[j] = clampf(wi[j], a->wmin, a->wmax);
                }
                for (int j = 0; j < n; j++)
                    if (a->col_hit[j])
                        for (int i = 0; i < n_in; i++) w[(size_t)i * n + j] = clampf(w[(size_t)i * n + j], a->wmin, a->wmax);
            }
            if (t == 0)  /* normalisation may have left weights outside the bounds: clamp them all once */
                for (size_t k = 0; k < (size_t)n_in * n; k++) w[k] = clampf(w[k], a->wmin, a->wmax);
        }
        /* -- spike counts -- */
        if (a->count_x) for (size_t k = 0; k < (size_t)B * n_in; k++) a->count_x[k] += a->sx[k];
        { int *tmp = last; last = now; now = tmp; tmp = n_last; n_last = n_now; n_now = tmp; }
        if (a->e.count) for (size_t k = 0; k < Bn; k++) a->e.count[k] += a->e.s[k];
        if (a->i.count) for (size_t k = 0; k < Bn; k++) a->i.count[k] += a->i.s[k];
        if (a->one_spike && a->keys_used >= a->n_keys && t + 1 < a->T) return t + 1;
    }
    return a->T;
}

/* torch's CPU generator, for torch.rand on float32: the same numbers, several times faster than
   torch's element-by-element kernel. The state is torch.get_rng_state()'s bytes
   (ATen's CPUGeneratorImplState: the mt19937 state words kept as uint64, `left` and `next`), read
   and written back in place; each float is the low 24 bits of one tempered mt19937 output / 2^24
   (ATen's uniform_real_distribution<float> on the CPU). */
typedef struct {
    uint64_t the_initial_seed;
    int left, seeded;
    uint64_t next;
    uint64_t state[624];
    double normal_x, normal_y, normal_rho;
    int normal_is_valid;
    float next_float_normal_sample;
    _Bool is_next_float_normal_sample_valid;
} torch_cpu_rng_state;

int torch_cpu_rng_state_size(void) { return (int)sizeof(torch_cpu_rng_state); }

static inline uint32_t mt_twist(uint32_t u, uint32_t v) {
    return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

static void mt_next_state(uint32_t *s) {  /* the 624 words anew, in ATen's order */
    int k = 0;
    for (; k < 624 - 397; k++) s[k] = s[k + 397] ^ mt_twist(s[k], s[k + 1]);
    for (; k < 623; k++) s[k] = s[k + 397 - 624] ^ mt_twist(s[k], s[k + 1]);
    s[623] = s[396] ^ mt_twist(s[623], s[0]);
}

static inline float mt_float(uint32_t y) {
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return (float)(y & 0xffffffu) * (1.0f / 16777216.0f);  /* exact: 24 bits */
}

void torch_cpu_uniform(torch_cpu_rng_state *g, float *out, int64_t count) {
    uint32_t s[624];
    for (int k = 0; k < 624; k++) s[k] = (uint32_t)g->state[k];
    int left = g->left;
    uint32_t next = (uint32_t)g->next;
    /* ATen: each draw first decrements `left`; at 0 the state twists (left = 624, next = 0) */
    while (count > 0) {
        int64_t m = left - 1 < count ? left - 1 : count;   /* draws before the next twist */
        for (int64_t i = 0; i < m; i++) out[i] = mt_float(s[next + i]);
        next += (uint32_t)m; left -= (int)m; out += m; count -= m;
        if (count > 0) {
            mt_next_state(s);
            left = 624; next = 0;
            *out++ = mt_float(s[next++]);
            count--;
        }
    }
    for (int k = 0; k < 624; k++) g->state[k] = s[k];
    g->left = left;
    g->next = next;
}
