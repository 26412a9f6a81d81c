package io.github.edgebackbones.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/** Stands in for LiteRT's exception type (com.google.ai.edge.litert.LiteRtException). */
class LiteRtException(message: String) : Exception(message)

/**
 * A LiteRT double. Accelerators in [failAtCreate] throw from
 * `CompiledModel.create` (no NPU runtime, no GPU delegate library); those in
 * [failAtRun] are created and throw on the first run (a shader that fails to
 * compile), as LiteRT does.
 */
class FakeLiteRt(
    private val failAtCreate: Map<Accelerator, String> = emptyMap(),
    private val failAtRun: Map<Accelerator, String> = emptyMap(),
) : BackendFactory {
    val created = mutableListOf<Accelerator>()
    val closed = mutableListOf<Accelerator>()
    val threads = mutableListOf<Int>()

    override fun open(accelerator: Accelerator, numThreads: Int): CompiledBackend {
        failAtCreate[accelerator]?.let { throw LiteRtException(it) }
        created += accelerator
        threads += numThreads
        return object : CompiledBackend {
            override fun run(input: RawTensor): Map<String, RawTensor> {
                failAtRun[accelerator]?.let { throw LiteRtException(it) }
                return mapOf("P1" to RawTensor.Floats(floatArrayOf(1f)))
            }

            override fun close() {
                closed += accelerator
            }
        }
    }
}

class AcceleratorFallbackTest {
    private val probe = RawTensor.Floats(FloatArray(3))
    private val all = listOf(Accelerator.NPU, Accelerator.GPU, Accelerator.CPU)

    @Test
    fun firstWorkingAcceleratorRunsAndSaysSo() {
        val lite = FakeLiteRt()
        val opened = AcceleratorFallback.open(lite, all, 4, probe)
        assertEquals(Accelerator.NPU, opened.accelerator)
        assertFalse(opened.fellBack)
        assertEquals("NPU", opened.describe())
        assertEquals(listOf(Accelerator.NPU), lite.created)
        assertEquals(listOf(4), lite.threads)
    }

    @Test
    fun fallsBackInOrderAndKeepsEachError() {
        val lite = FakeLiteRt(
            failAtCreate = mapOf(Accelerator.NPU to "Failed to create NPU environment"),
            failAtRun = mapOf(Accelerator.GPU to "kLiteRtStatusErrorRuntimeFailure: shader compile"),
        )
        val opened = AcceleratorFallback.open(lite, all, 2, probe)
        assertEquals(Accelerator.CPU, opened.accelerator)
        assertTrue(opened.fellBack)
        assertEquals(listOf(Accelerator.NPU, Accelerator.GPU, Accelerator.CPU), opened.attempts.map { it.accelerator })
        assertEquals(
            "CPU (NPU failed: LiteRtException: Failed to create NPU environment; " +
                "GPU failed: LiteRtException: kLiteRtStatusErrorRuntimeFailure: shader compile)",
            opened.describe(),
        )
        // the GPU model that failed its first run is released
        assertEquals(listOf(Accelerator.GPU), lite.closed)
    }

    @Test
    fun neverRunsOnCpuUnlessAsked() {
        val lite = FakeLiteRt(failAtCreate = mapOf(Accelerator.GPU to "GPU delegate library not found"))
        val error = assertThrows(AcceleratorUnavailableException::class.java) {
            AcceleratorFallback.open(lite, listOf(Accelerator.GPU), 1, probe)
        }
        assertTrue(lite.created.isEmpty(), "nothing ran: ${lite.created}")
        assertEquals(listOf(Attempt(Accelerator.GPU, "LiteRtException: GPU delegate library not found")), error.attempts)
        assertTrue("Add CPU to the order" in error.message!!, error.message)
    }

    @Test
    fun refusesABadOrderOrThreadCount() {
        assertThrows(InputException::class.java) { AcceleratorFallback.open(FakeLiteRt(), emptyList(), 1, probe) }
        assertThrows(InputException::class.java) {
            AcceleratorFallback.open(FakeLiteRt(), listOf(Accelerator.GPU, Accelerator.GPU), 1, probe)
        }
        assertThrows(InputException::class.java) { AcceleratorFallback.open(FakeLiteRt(), all, 0, probe) }
    }

    @Test
    fun benchmarkTimesOnlyTheTimedRuns() {
        val opened = AcceleratorFallback.open(FakeLiteRt(), listOf(Accelerator.CPU), 1, probe)
        var now = 0L
        var step = 0L
        val seconds = Benchmark.time(opened, probe, warmup = 2, runs = 3, nanoTime = {
            now += step
            step += 1_000_000
            now
        })
        // calls: start/end of run 1 -> 0 and 1 ms steps, ...: durations 1, 3, 5 ms
        assertEquals(listOf(0.001, 0.003, 0.005), seconds)
        assertEquals(3.0, LatencyStats.ofSeconds(seconds).median, 1e-12)
    }
}
