package io.github.edgebackbones.core

/** Where LiteRT can run a model; the app tries them in the order the user picks. */
enum class Accelerator { NPU, GPU, CPU }

/**
 * One compiled model on one accelerator: the small surface :core needs from
 * LiteRT's `CompiledModel`. The app implements it over LiteRT; tests use a
 * double that fails as LiteRT fails (an exception from create or from the
 * first run).
 */
interface CompiledBackend : AutoCloseable {
    /** Runs the model; returns every output by its SignatureDef name. */
    fun run(input: RawTensor): Map<String, RawTensor>
}

/** Opens [CompiledBackend]s; throws (anything) when an accelerator cannot take the model. */
fun interface BackendFactory {
    fun open(accelerator: Accelerator, numThreads: Int): CompiledBackend
}

/** One try on one accelerator: [error] is null when it opened and ran. */
data class Attempt(val accelerator: Accelerator, val error: String?) {
    val succeeded get() = error == null
}

/** A model open on the accelerator that actually ran it, with every attempt that led there. */
class OpenedModel(
    val backend: CompiledBackend,
    val accelerator: Accelerator,
    val attempts: List<Attempt>,
) : AutoCloseable {
    /** True when an accelerator earlier in the order failed: the UI must say so. */
    val fellBack get() = attempts.size > 1

    /** "GPU (NPU failed: ...)": what ran and why, for the screen and the device JSON. */
    fun describe(): String {
        val failed = attempts.filter { !it.succeeded }
        if (failed.isEmpty()) return accelerator.name
        return accelerator.name + " (" + failed.joinToString("; ") { "${it.accelerator} failed: ${it.error}" } + ")"
    }

    override fun close() = backend.close()
}

/**
 * Explicit accelerator fallback. Each accelerator in [order] is tried alone:
 * created, then run once on [probe] (LiteRT can accept a model at creation
 * and fail on the first run, e.g. when the GPU delegate compiles its shaders),
 * and the first that does both is kept. Nothing outside [order] is ever tried,
 * so CPU runs only when the user listed it: never a silent CPU run.
 */
object AcceleratorFallback {
    fun open(factory: BackendFactory, order: List<Accelerator>, numThreads: Int, probe: RawTensor): OpenedModel {
        if (order.isEmpty() || order.toSet().size != order.size) {
            throw InputException(
                "Accelerator order $order must list NPU, GPU and/or CPU, each at most once " +
                    "(e.g. [NPU, GPU, CPU]).",
            )
        }
        if (numThreads < 1) throw InputException("numThreads must be >= 1; got $numThreads.")
        val attempts = mutableListOf<Attempt>()
        for (accelerator in order) {
            var backend: CompiledBackend? = null
            try {
                backend = factory.open(accelerator, numThreads)
                backend.run(probe)
                attempts += Attempt(accelerator, null)
                return OpenedModel(backend, accelerator, attempts.toList())
            } catch (e: Exception) {
                runCatching { backend?.close() }
                attempts += Attempt(accelerator, "${e::class.simpleName}: ${e.message ?: "no message"}")
            }
        }
        throw AcceleratorUnavailableException(
            "No accelerator in $order could run the model: " +
                attempts.joinToString("; ") { "${it.accelerator}: ${it.error}" } +
                ". Add CPU to the order, or bundle the artifact exported for this accelerator " +
                "(target gpu for GPU, npu for NPU).",
            attempts,
        )
    }
}

/** Warm-up runs, then timed runs of the same input: `runtime.bench.benchmark`'s loop. */
object Benchmark {
    fun time(
        model: OpenedModel,
        input: RawTensor,
        warmup: Int,
        runs: Int,
        nanoTime: () -> Long = System::nanoTime,
    ): List<Double> {
        if (runs < 1 || warmup < 0) {
            throw InputException("runs must be >= 1 and warmup >= 0; got runs=$runs, warmup=$warmup.")
        }
        repeat(warmup) { model.backend.run(input) }
        return List(runs) {
            val start = nanoTime()
            model.backend.run(input)
            (nanoTime() - start) / 1e9
        }
    }
}
