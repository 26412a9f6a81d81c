package io.github.edgebackbones.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

/**
 * The sidecar of every target (tests/goldens/artifacts/, written by
 * tests/goldens/make_artifact_goldens.py from real exports) against the same
 * artifact.schema.json the Python exporter validates with, then parsed.
 * The folder comes from the `artifactGoldens` system property (the CI stage
 * and Gradle pass the repository's), else is looked up from the working folder.
 */
class ArtifactGoldensTest {
    private val dir: File by lazy {
        System.getProperty("artifactGoldens")?.let(::File)
            ?: generateSequence(File("").absoluteFile) { it.parentFile }
                .map { File(it, "tests/goldens/artifacts") }
                .firstOrNull { it.isDirectory }
            ?: error("No tests/goldens/artifacts above ${File("").absolutePath}; pass -DartifactGoldens=DIR.")
    }

    private fun text(name: String) = File(dir, "$name.json").readText()

    @Suppress("UNCHECKED_CAST")
    private fun json(name: String) = Json.parse(text(name)) as MutableMap<String, Any?>

    private val targets = listOf("fp32", "fp16", "cpu", "int8", "int8_io", "int8_mixed", "npu", "npu_int8", "gpu")
    private val compiled = "npu_compiled_SM8650"

    @Test
    fun everyTargetHasAGolden() {
        val names = dir.listFiles { f -> f.name.endsWith(".json") }!!.map { it.name.removeSuffix(".json") }
        assertEquals((targets + compiled).sorted(), names.sorted())
    }

    @Test
    fun everyGoldenValidatesAndParses() {
        val schema = ArtifactSchema.bundled
        assertEquals(1, schema.version)
        for (name in targets + compiled) {
            assertEquals(emptyList<Pair<String, String>>(), schema.errors(Json.parse(text(name))), name)
            val m = ModelMetadata.parse(text(name))
            assertEquals("tiny", m.modelName, name)
            assertEquals(listOf("P1", "P2"), m.levels.map { it.name }, name)
            assertEquals(listOf(1, 4, 4, 16), m.level("P2").shape, name)
            assertEquals(8, m.level("P2").stride, name)
        }
    }

    @Test
    fun theNpuTargetParsesAndSaysWhyItCannotRunHere() {
        val npu = ModelMetadata.parse(text("npu"))
        assertEquals(DType.INT16, npu.input.dtype)
        assertEquals(0, npu.input.quantization!!.zeroPoint)
        assertEquals(BindingProblem("images", DType.INT16), npu.bindingProblem)
        assertThrows(UnbindableTensorException::class.java) { npu.requireBindable() }
        for (name in targets - "npu") assertNull(ModelMetadata.parse(text(name)).bindingProblem, name)
        assertEquals(DType.INT8, ModelMetadata.parse(text("npu_int8")).input.dtype)
    }

    @Test
    fun theCompiledSchemaIsRead() {
        val m = ModelMetadata.parse(text(compiled))
        assertEquals(METADATA_SCHEMA_COMPILED, m.schema)
        assertEquals(CompiledInfo("SM8650", "Qualcomm", "QNN HTP"), m.compiled)
        assertNull(ModelMetadata.parse(text("npu")).compiled)
        assertNotNull(m.bindingProblem) // the compiled npu artifact keeps its int16 I/O
    }

    @Test
    fun aTaskBlockIsTyped() {
        val m = json("fp32")
        m["task"] = mapOf("kind" to "segmentation", "class_names" to listOf("sky", "road"), "num_classes" to 2L)
        val parsed = ModelMetadata.parse(Json.write(m))
        assertEquals(TaskInfo("segmentation", listOf("sky", "road"), 2), parsed.task)
        m["task"] = mapOf("kind" to "segmentation")
        assertField("\$.task.class_names", m)
    }

    @Suppress("UNCHECKED_CAST")
    private fun Map<String, Any?>.obj(key: String) = this[key] as MutableMap<String, Any?>

    private fun assertField(field: String, broken: Map<String, Any?>) {
        val error = assertThrows(ArtifactSchemaException::class.java) { ModelMetadata.parse(Json.write(broken)) }
        assertEquals(field, error.field, error.message)
        assertEquals(1, error.schemaVersion)
        assertTrue("at $field:" in error.message!! && "version 1" in error.message!!, error.message)
    }

    @Test
    fun aBrokenGoldenIsRefusedNamingTheFieldAndVersion() {
        assertField("\$.input.dtype", json("fp32").also { it.obj("input").remove("dtype") })
        assertField("\$.outputs.P1.dtype", json("int8_io").also { it.obj("outputs").obj("P1")["dtype"] = "int4" })
        assertField("\$.input.quantization.scale", json("npu").also { it.obj("input").obj("quantization")["scale"] = 0.0 })
        assertField("\$.model", json("fp16").also { it.remove("model") })
        assertField("\$.schema", json("cpu").also { it["schema"] = "edge_backbones.tflite/3" })
        assertField("\$.compiled", json(compiled).also { it.remove("compiled") })
        assertField("\$.compiled", json("npu").also { it["compiled"] = json(compiled)["compiled"] })
        assertField("\$.numerics_vs_cpu", json("npu_int8").also { it["numerics_vs_cpu"] = emptyMap<String, Any?>() })
        assertField("\$.graph.gpu_run.status", json("gpu").also { it.obj("graph").obj("gpu_run").remove("status") })
        assertField("\$.input.shape[4]", json("int8_mixed").also { (it.obj("input")["shape"] as MutableList<Any?>).add(true) })
        assertField("\$.task.kind", json("fp32").also { it["task"] = mapOf("kind" to "detector") })
    }

    @Test
    fun theSchemaRefusesKeywordsItWouldNotEnforce() {
        val error = assertThrows(MetadataException::class.java) {
            ArtifactSchema.parse("""{"${'$'}id": "x/1", "type": "object", "patternProperties": {}}""")
        }
        assertTrue("patternProperties" in error.message!!, error.message)
    }
}
