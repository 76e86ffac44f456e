/*
 * sim_hash: the one 64-bit mixer of harmonic-sim (splitmix64's finaliser),
 * shared by the deterministic text (sim_wire) and the prompt cache's token
 * hashes (sim_cache).
 */
#ifndef HARMONIC_SIM_HASH_H
#define HARMONIC_SIM_HASH_H

#include <stdint.h>

static inline uint64_t
sim_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

#endif
