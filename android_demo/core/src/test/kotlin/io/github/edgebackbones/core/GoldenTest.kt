package io.github.edgebackbones.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.math.abs
import kotlin.math.max

/** :core against the Python runtime's own outputs (make_goldens.py). */
class GoldenTest {
    @Test
    fun resizeMatchesOpenCvByteForByte() {
        val image = Goldens.image()
        @Suppress("UNCHECKED_CAST")
        val cases = Goldens.stats["resize"] as List<Map<String, Any?>>
        assertTrue(cases.size >= 10)
        for (case in cases) {
            val (ch, cw) = (case["crop"] as List<*>).map { (it as Long).toInt() }
            val (h, w) = (case["size"] as List<*>).map { (it as Long).toInt() }
            val interpolation = Interpolation.entries.first { it.jsonName == case["interpolation"] }
            val got = OpenCvResize.resize(crop(image, ch, cw), h, w, interpolation)
            val want = Goldens.bytes(case["array"] as String)
            val differing = want.indices.count { want[it] != got.pixels[it] }
            assertEquals(0, differing, "${case["array"]}: $differing of ${want.size} bytes differ from cv2.resize")
        }
    }

    @Test
    fun preprocessingMatchesPythonForEveryPolicy() {
        val image = Goldens.image()
        @Suppress("UNCHECKED_CAST")
        val cases = Goldens.stats["preprocess"] as List<Map<String, Any?>>
        val policies = mutableSetOf<String>()
        for (case in cases) {
            val spec = specOf(case["spec"].asObject("spec"))
            val (h, w) = (case["size"] as List<*>).map { (it as Long).toInt() }
            policies += "${spec.resize}/${spec.interpolation}/${spec.pixelsInGraph}/${spec.bgr}"
            checkInput(Preprocessor.preprocess(image, spec, h, w), case["array"] as String)
        }
        assertEquals(5, policies.size, "every case kind ran: $policies")
    }

    @Test
    fun everyArtifactKindReproducesInputPyramidAndStatistics() {
        val image = Goldens.image()
        val kinds = Goldens.models()
        assertEquals(setOf("fp32", "cpu", "gpu", "npu_int8", "npu_uint8_pixels"), kinds.keys)
        for ((kind, summary) in kinds) {
            val metadata = Goldens.metadata(kind)
            Artifacts.checkSidecar(File(Goldens.dir, "$kind.tflite").readBytes(), metadata)
            val input = Preprocessor.preprocess(
                image, metadata.preprocessing, metadata.input.height, metadata.input.width,
            )
            checkInput(input, "$kind/input")
            val tensor = Tensors.toInputTensor(input, metadata.input, metadata.preprocessing.pixelsInGraph)
            if (Goldens.has("$kind/input_q")) {
                assertArrayEquals(Goldens.bytes("$kind/input_q"), (tensor as RawTensor.Bytes).values, kind)
            } else {
                assertEquals(DType.FLOAT32, metadata.input.dtype, kind)
            }
            // reversed: the map's order must not matter, only the names
            val raw = metadata.levels.reversed().associate { it.name to Goldens.raw("$kind/raw_${it.name}") }
            val pyramid = Tensors.pyramid(raw, metadata)
            @Suppress("UNCHECKED_CAST")
            val stats = summary["levels"] as Map<String, Map<String, Any?>>
            assertEquals(stats.keys.toList(), pyramid.map { it.name }, kind)
            for (level in pyramid) checkLevel(kind, level, stats.getValue(level.name))
        }
    }

    private fun checkLevel(kind: String, level: FeatureMap, want: Map<String, Any?>) {
        val where = "$kind ${level.name}"
        assertEquals(Goldens.shape("$kind/deq_${level.name}"), level.shape, where)
        // dequantizing is exact: the same float32 operations as EdgeModel
        val expected = Goldens.floats("$kind/deq_${level.name}")
        for (i in expected.indices) {
            assertEquals(expected[i].toRawBits(), level.values[i].toRawBits(), "$where value $i")
        }
        val stats = LevelStats.of(level)
        close(want["mean"], stats.mean, "$where mean")
        close(want["std"], stats.std, "$where std")
        close(want["min"], stats.min, "$where min")
        close(want["max"], stats.max, "$where max")
        close(want["mean_abs"], stats.meanAbs, "$where mean_abs")
        close(want["zero_fraction"], stats.zeroFraction, "$where zero_fraction")
        val norm = Visualization.channelNorm(level)
        val wantNorm = Goldens.doubles("$kind/norm_${level.name}")
        for (i in wantNorm.indices) close(wantNorm[i], norm[i], "$where norm $i")
    }

    @Test
    fun latencyStatisticsMatchTheBench() {
        @Suppress("UNCHECKED_CAST")
        val cases = Goldens.stats["latency"] as Map<String, Map<String, Any?>>
        for ((name, case) in cases) {
            val seconds = (case["seconds"] as List<*>).map { (it as Number).toDouble() }
            val want = case["stats"].asObject("stats")
            val got = LatencyStats.ofSeconds(seconds).toJson()
            assertEquals(want.keys, got.keys, name)
            for (key in want.keys) {
                if (key == "runs") assertEquals((want[key] as Long).toInt(), got[key], name)
                else close(want[key], got[key] as Double, "$name $key")
            }
        }
    }

    @Test
    fun aSwappedSidecarIsRefused() {
        val fp32 = File(Goldens.dir, "fp32.tflite").readBytes()
        val error = runCatching { Artifacts.checkSidecar(fp32, Goldens.metadata("npu_int8")) }.exceptionOrNull()
        assertTrue(error is MetadataException && "another build" in error.message!!, "$error")
    }

    @Test
    fun writesADeviceJsonForTheMerge() {
        val rows = listOf("fp32", "npu_int8").mapIndexed { i, kind ->
            val metadata = Goldens.metadata(kind)
            val bytes = File(Goldens.dir, "$kind.tflite").readBytes()
            val opened = OpenedModel(
                NoBackend,
                if (i == 0) Accelerator.GPU else Accelerator.CPU,
                if (i == 0) listOf(Attempt(Accelerator.GPU, null))
                else listOf(Attempt(Accelerator.NPU, "LiteRtException: no NPU"), Attempt(Accelerator.CPU, null)),
            )
            PhoneMeasurement(
                metadata, "$kind.tflite", Artifacts.checkSidecar(bytes, metadata), bytes.size.toLong(), 4,
                opened, 12.5, 3, LatencyStats.ofSeconds(listOf(0.004, 0.005, 0.0045 + i * 0.001)), null,
            )
        }
        val run = DeviceReport.newRun("edge_backbones android demo", mapOf("threads" to listOf(4), "runs" to 3))
        val document = DeviceReport.document(
            DeviceInfo("pixel-test", "Tensor G3", "husky", 9, "14", "arm64-v8a", "Android 14 (API 34)",
                mapOf("com.google.ai.edge.litert:litert" to "2.3.0")),
            listOf(run + ("finished" to DeviceReport.utcNow())),
            rows.map { DeviceReport.row(it, run["run_id"] as String) },
        )
        val parsed = Json.parse(document).asObject("document")
        assertEquals(REPORT_SCHEMA, parsed["schema"])
        assertFalse("NaN" in document)
        File(Goldens.dir, "phone.json").writeText(document)
    }

    private object NoBackend : CompiledBackend {
        override fun run(input: RawTensor): Map<String, RawTensor> = error("not run")
        override fun close() {}
    }

    private fun checkInput(input: ModelInput, name: String) {
        assertEquals(Goldens.shape(name), listOf(input.height, input.width, 3), name)
        when (input) {
            is ModelInput.Pixels -> assertArrayEquals(Goldens.bytes(name), input.values, name)
            is ModelInput.Floats -> {
                val want = Goldens.floats(name)
                var worst = 0f
                for (i in want.indices) worst = max(worst, abs(want[i] - input.values[i]))
                assertTrue(worst <= 1e-5f, "$name: max abs difference $worst > 1e-5")
            }
        }
    }

    private fun close(want: Any?, got: Double, where: String) {
        val w = (want as Number).toDouble()
        assertTrue(abs(w - got) <= 1e-9 * max(1.0, abs(w)), "$where: want $w, got $got")
    }

    private fun specOf(spec: Map<String, Any?>) =
        ModelMetadata.fromJson(
            mapOf(
                "schema" to METADATA_SCHEMA, "mode" to "fp32",
                "input" to mapOf("name" to "x", "shape" to listOf(1L, 1L, 1L, 3L), "dtype" to "float32",
                    "preprocessing" to spec),
                "outputs" to mapOf("P1" to mapOf("shape" to listOf(1L, 1L, 1L, 1L), "dtype" to "float32")),
            ),
        ).preprocessing
}
