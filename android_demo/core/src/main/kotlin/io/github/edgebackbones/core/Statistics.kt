package io.github.edgebackbones.core

import kotlin.math.abs
import kotlin.math.ceil
import kotlin.math.floor
import kotlin.math.sqrt

/** Summary of one pyramid level, in double precision (as the golden script's numpy). */
data class LevelStats(
    val mean: Double,
    val std: Double,
    val min: Double,
    val max: Double,
    val meanAbs: Double,
    val zeroFraction: Double,
) {
    companion object {
        fun of(map: FeatureMap): LevelStats {
            val v = map.values
            if (v.isEmpty()) throw InputException("Level ${map.name} is empty; nothing to summarize.")
            var sum = 0.0
            var sumAbs = 0.0
            var zeros = 0
            var lo = Double.POSITIVE_INFINITY
            var hi = Double.NEGATIVE_INFINITY
            for (f in v) {
                val d = f.toDouble()
                sum += d
                sumAbs += abs(d)
                if (d == 0.0) zeros++
                if (d < lo) lo = d
                if (d > hi) hi = d
            }
            val mean = sum / v.size
            var squares = 0.0
            for (f in v) squares += (f - mean) * (f - mean)
            return LevelStats(mean, sqrt(squares / v.size), lo, hi, sumAbs / v.size, zeros.toDouble() / v.size)
        }
    }
}

/**
 * Latency summary in milliseconds, with `runtime.bench.latency_stats`'s
 * definitions: numpy's median, linear-interpolated percentiles (p5, p95) and
 * the population standard deviation.
 */
data class LatencyStats(
    val median: Double,
    val p5: Double,
    val p95: Double,
    val mean: Double,
    val std: Double,
    val min: Double,
    val max: Double,
    val runs: Int,
) {
    fun toJson(): Map<String, Any?> = linkedMapOf(
        "median" to median, "p5" to p5, "p95" to p95, "mean" to mean,
        "std" to std, "min" to min, "max" to max, "runs" to runs,
    )

    companion object {
        fun ofSeconds(seconds: List<Double>): LatencyStats {
            if (seconds.isEmpty()) throw InputException("No timed runs to summarize; time at least one run.")
            val ms = seconds.map { it * 1e3 }.sorted()
            val mean = ms.sum() / ms.size
            val variance = ms.sumOf { (it - mean) * (it - mean) } / ms.size
            return LatencyStats(
                median = percentile(ms, 50.0),
                p5 = percentile(ms, 5.0),
                p95 = percentile(ms, 95.0),
                mean = mean,
                std = sqrt(variance),
                min = ms.first(),
                max = ms.last(),
                runs = ms.size,
            )
        }

        /** numpy's default ("linear"): rank q/100 * (n - 1), interpolated between neighbours. */
        fun percentile(sorted: List<Double>, q: Double): Double {
            val rank = q / 100.0 * (sorted.size - 1)
            val lo = floor(rank).toInt()
            val hi = ceil(rank).toInt()
            val t = rank - lo
            return sorted[lo] + (sorted[hi] - sorted[lo]) * t
        }
    }
}
