package io.github.edgebackbones.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import kotlin.math.abs
import kotlin.math.sqrt

class JsonTest {
    @Test
    fun roundTripsWhatPythonWrites() {
        val text = """{"a": [1, -2.5e-3, true, null, "x\"\u00e9\n"], "b": {}, "c": 12345678901}"""
        val value = Json.parse(text)
        assertEquals(
            mapOf("a" to listOf(1L, -0.0025, true, null, "x\"é\n"), "b" to emptyMap<String, Any?>(), "c" to 12345678901L),
            value,
        )
        assertEquals(value, Json.parse(Json.write(value)))
    }

    @Test
    fun isStrict() {
        for (bad in listOf("{\"a\": NaN}", "[1,]", "{\"a\": 1} x", "{\"a\": 1, \"a\": 2}", "[01x]", "")) {
            assertThrows(MetadataException::class.java, { Json.parse(bad) }, bad)
        }
        assertThrows(InputException::class.java) { Json.write(listOf(Double.NaN)) }
    }
}

class MetadataTest {
    // a partial sidecar: these cases test the typed reading (fromJson); the
    // schema check of whole sidecars is ArtifactGoldensTest's
    private fun parse(text: String) = ModelMetadata.fromJson(Json.parse(text))

    private fun sidecar(preprocessing: String, dtype: String = "int8", quant: String = """{"scale": 0.5, "zero_point": -3}""") = """
        {"schema": "edge_backbones.tflite/1", "mode": "npu", "model": {"name": "m"},
         "input": {"name": "images", "shape": [1, 4, 6, 3], "dtype": "$dtype", "quantization": $quant,
                   "preprocessing": $preprocessing},
         "outputs": {"P2": {"shape": [1, 1, 1, 2], "dtype": "int8", "stride": 8, "channels": 2,
                            "quantization": {"scale": 0.25, "zero_point": 1}},
                     "P1": {"shape": [1, 2, 2, 1], "dtype": "float32", "stride": 4, "channels": 1}}}
    """

    @Test
    fun readsTheFieldsAndKeepsTheLevelOrder() {
        val m = parse(sidecar("""{"resize": "longest_side_pad", "mean": [1, 2, 3]}"""))
        assertEquals(listOf("P2", "P1"), m.levels.map { it.name })
        assertEquals(Quantization(0.5f, -3), m.input.quantization)
        assertEquals(ResizePolicy.LONGEST_SIDE_PAD, m.preprocessing.resize)
        assertEquals(listOf(1.0, 2.0, 3.0), m.preprocessing.mean)
        assertEquals(listOf(1.0, 1.0, 1.0), m.preprocessing.std) // the Python default
        assertEquals(8, m.level("P2").stride)
    }

    @Test
    fun refusesWhatItCannotReproduce() {
        for (bad in listOf(
            sidecar("""{"interpolation": "area"}"""),
            sidecar("""{"std": [1, 0, 1]}"""),
            sidecar("""{"colour_order": "RGB"}"""),
            sidecar("{}", quant = """{"scale": 0, "zero_point": 0}"""),
            sidecar("null"),
            """{"schema": "other/1"}""",
        )) {
            assertThrows(MetadataException::class.java, { parse(bad) }, bad)
        }
    }

    @Test
    fun readsInt16IoAndSaysTheAppCannotBindIt() {
        val m = parse(sidecar("{}", dtype = "int16"))
        assertEquals(DType.INT16, m.input.dtype)
        assertEquals(BindingProblem("images", DType.INT16), m.bindingProblem)
        val error = assertThrows(UnbindableTensorException::class.java) { m.requireBindable() }
        assertTrue("int16" in error.message!! && "images" in error.message!!, error.message)
        assertThrows(UnbindableTensorException::class.java) {
            Tensors.toInputTensor(ModelInput.Floats(4, 6, FloatArray(72)), m.input, false)
        }
        assertEquals(null, parse(sidecar("{}")).bindingProblem)
    }

    @Test
    fun quantizesAndDequantizesByName() {
        val m = parse(sidecar("{}"))
        val q = Tensors.quantize(floatArrayOf(0f, 1.24f, -100f, 100f, 0.25f, 1.75f), m.input)
        // x / 0.5 - 3, rounded half to even (numpy's rint: 0.5 -> 0), clipped to int8
        assertEquals(listOf<Byte>(-3, -1, -128, 127, -2, 0), q.values.toList())
        val pyramid = Tensors.pyramid(
            mapOf(
                "P1" to RawTensor.Floats(floatArrayOf(1f, 2f, 3f, 4f)),
                "P2" to RawTensor.Bytes(byteArrayOf(5, -1)),
            ),
            m,
        )
        assertEquals(listOf("P2", "P1"), pyramid.map { it.name })
        assertEquals(listOf(1.0f, -0.5f), pyramid[0].values.toList())
        assertThrows(InputException::class.java) {
            Tensors.pyramid(mapOf("P1" to RawTensor.Floats(FloatArray(4))), m)
        }
        assertThrows(InputException::class.java) {
            Tensors.pyramid(mapOf("P1" to RawTensor.Bytes(ByteArray(4)), "P2" to RawTensor.Bytes(ByteArray(2))), m)
        }
    }
}

class VisualizationTest {
    @Test
    fun pcaFindsTheDominantDirections() {
        // 3 channels: variance 9 along (1, 1, 0)/sqrt2, 1 along z, 0 along (1, -1, 0)
        val values = FloatArray(4 * 3)
        val points = listOf(floatArrayOf(3f, 3f, 1f), floatArrayOf(-3f, -3f, -1f), floatArrayOf(3f, 3f, -1f),
            floatArrayOf(-3f, -3f, 1f))
        points.forEachIndexed { p, v -> v.copyInto(values, p * 3) }
        val map = FeatureMap("P1", listOf(1, 2, 2, 3), values)
        val (first, second) = Visualization.principalComponents(map, 2)
        assertEquals(1.0, abs(first[0] + first[1]) / sqrt(2.0), 1e-6)
        assertEquals(1.0, abs(second[2]), 1e-6)
        val picture = Visualization.pcaPicture(map)
        assertEquals(4, picture.argb.size)
        assertTrue(picture.argb.all { it ushr 24 == 0xFF })
        val norm = Visualization.channelNormPicture(map)
        assertEquals(norm.argb.toSet().size, 1) // every point has the same norm
    }
}
