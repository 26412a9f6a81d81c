package io.github.edgebackbones.core

import java.security.MessageDigest
import java.time.Instant
import java.time.temporal.ChronoUnit
import java.util.UUID

/** The schema `edge-backbones report` writes and `report merge` reads. */
const val REPORT_SCHEMA = "edge_backbones.report/1"

/** Who measured: the phone, as `records.describe_device` describes a Linux machine. */
data class DeviceInfo(
    val name: String,
    val cpuModel: String,
    val board: String?,
    val logicalCores: Int,
    val osRelease: String,
    val machine: String,
    val platform: String,
    val versions: Map<String, String>,
) {
    fun toJson(): Map<String, Any?> = linkedMapOf(
        "name" to name,
        "cpu" to linkedMapOf(
            "model" to cpuModel, "board" to board, "logical_cores" to logicalCores, "flags" to emptyList<String>(),
        ),
        "os" to linkedMapOf(
            "system" to "Android", "release" to osRelease, "machine" to machine, "platform" to platform,
        ),
        "python" to null,
        "versions" to versions,
    )
}

/** One model timed on the phone: what a row of the device JSON says. */
data class PhoneMeasurement(
    val metadata: ModelMetadata,
    val artifactPath: String,
    val sha256: String,
    val sizeBytes: Long,
    val threads: Int,
    val opened: OpenedModel,
    val initMs: Double,
    val warmup: Int,
    val latency: LatencyStats,
    val peakRssMb: Double?,
)

/** Builds a device JSON `edge-backbones report merge laptop.json phone.json` accepts. */
object DeviceReport {
    /** The backend label rows carry: the Android runtime, not the Python one. */
    const val BACKEND = "LiteRT CompiledModel (Android)"

    fun utcNow(): String = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString().replace("Z", "+00:00")

    fun newRun(command: String, settings: Map<String, Any?>, started: String = utcNow()): MutableMap<String, Any?> =
        linkedMapOf(
            "run_id" to UUID.randomUUID().toString().replace("-", "").take(12),
            "started" to started,
            "command" to command,
            "settings" to settings,
        )

    fun row(m: PhoneMeasurement, runId: String, measured: String = utcNow()): Map<String, Any?> {
        val raw = m.metadata.raw
        val model = raw["model"] as? Map<*, *> ?: emptyMap<String, Any?>()
        val fidelity = raw["fidelity"] as? Map<*, *>
        return linkedMapOf(
            "run_id" to runId,
            "measured" to measured,
            "kind" to "tflite",
            "model" to linkedMapOf(
                "name" to m.metadata.modelName,
                "class_name" to model["class_name"],
                "params" to model["params"],
                "weights" to model["weights"],
            ),
            "mode" to m.metadata.mode,
            "recipe" to raw["recipe"],
            "input" to linkedMapOf("shape" to m.metadata.input.shape, "dtype" to m.metadata.input.dtype.jsonName),
            "artifact" to linkedMapOf(
                "path" to m.artifactPath, "sha256" to m.sha256, "size_bytes" to m.sizeBytes,
                "created" to raw["created"],
            ),
            "threads" to m.threads,
            // the MAC count needs the FlatBuffer parser of the Python package
            "macs" to null,
            "fidelity" to fidelity?.let { LinkedHashMap<Any?, Any?>(it).apply { put("source", "artifact metadata") } },
            "backend" to BACKEND,
            "delegate" to delegateName(m.opened.accelerator),
            // LiteRT's Kotlin API does not say whether every op was accelerated
            "fully_delegated" to null,
            "cpu_ops" to null,
            "accelerator_attempts" to m.opened.attempts.map {
                linkedMapOf("accelerator" to it.accelerator.name, "error" to it.error)
            },
            "init_ms" to m.initMs,
            "warmup" to m.warmup,
            "latency_ms" to m.latency.toJson(),
            "peak_rss_mb" to m.peakRssMb,
            "gmacs_per_s" to null,
        )
    }

    /** The Python runtime's delegate names: LiteRT's CPU accelerator is XNNPACK. */
    fun delegateName(accelerator: Accelerator) = when (accelerator) {
        Accelerator.NPU -> "npu"
        Accelerator.GPU -> "gpu"
        Accelerator.CPU -> "xnnpack"
    }

    fun document(device: DeviceInfo, runs: List<Map<String, Any?>>, rows: List<Map<String, Any?>>): String =
        Json.write(linkedMapOf("schema" to REPORT_SCHEMA, "device" to device.toJson(), "runs" to runs, "rows" to rows))
}

/** The artifact's bytes must be the ones the sidecar describes (as `read_metadata` checks). */
object Artifacts {
    fun sha256(bytes: ByteArray): String =
        MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    fun checkSidecar(modelBytes: ByteArray, metadata: ModelMetadata): String {
        val actual = sha256(modelBytes)
        val expected = metadata.raw["sha256"] as? String
        if (expected != null && expected != actual) {
            throw MetadataException(
                "The sidecar describes another build: its sha256 is $expected but the model hashes " +
                    "to $actual. Bundle the .json exported with this .tflite.",
            )
        }
        return actual
    }
}
