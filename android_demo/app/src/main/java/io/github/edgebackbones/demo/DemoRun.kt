package io.github.edgebackbones.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.os.Build
import android.os.SystemClock
import io.github.edgebackbones.core.Accelerator
import io.github.edgebackbones.core.AcceleratorFallback
import io.github.edgebackbones.core.ArtifactRole
import io.github.edgebackbones.core.Artifacts
import io.github.edgebackbones.core.Benchmark
import io.github.edgebackbones.core.DeviceInfo
import io.github.edgebackbones.core.DeviceReport
import io.github.edgebackbones.core.Bundle
import io.github.edgebackbones.core.LegendEntry
import io.github.edgebackbones.core.FeatureMap
import io.github.edgebackbones.core.LatencyStats
import io.github.edgebackbones.core.LevelStats
import io.github.edgebackbones.core.ModelMetadata
import io.github.edgebackbones.core.PhoneMeasurement
import io.github.edgebackbones.core.Preprocessor
import io.github.edgebackbones.core.RgbImage
import io.github.edgebackbones.core.SamPair
import io.github.edgebackbones.core.Segmentation
import io.github.edgebackbones.core.Tensors
import io.github.edgebackbones.core.Visualization
import java.io.File

/**
 * What one press of "Run" produced, for the screen and the device JSON: a backbone's
 * principal components, or a segmenter's class map over the photo with its [legend].
 */
class DemoResult(
    val measurement: PhoneMeasurement,
    val levels: List<Pair<FeatureMap, LevelStats>>,
    val picture: Bitmap,
    val legend: List<LegendEntry> = emptyList(),
)

/** Glue: assets -> :core preprocessing -> LiteRT (with fallback) -> :core results. */
class DemoRun(private val context: Context) {
    /** Every `x.tflite` in assets/ with its sidecar `x.json` -> the sidecar's text. */
    private val sidecars: Map<String, String> by lazy {
        val names = context.assets.list("")?.toSet() ?: emptySet()
        names.filter { it.endsWith(".tflite") && it.removeSuffix(".tflite") + ".json" in names }.sorted()
            .associateWith { readAsset(it.removeSuffix(".tflite") + ".json").decodeToString() }
    }

    /** The artifacts "Run" takes: backbones, segmenters, SAM encoders (a decoder needs prompts). */
    fun artifacts(): List<String> = sidecars.filterValues { Bundle.roleOf(it) != ArtifactRole.SAM_DECODER }.keys.toList()

    /** The bundled SAM encoder + decoder pairs, for tap-to-segment. */
    fun samPairs(): List<SamPair> = Bundle.samPairs(sidecars)

    fun run(asset: String, order: List<Accelerator>, threads: Int, warmup: Int, runs: Int): DemoResult {
        val metadata = ModelMetadata.parse(readAsset(asset.removeSuffix(".tflite") + ".json").decodeToString())
        // an artifact with int16 I/O (the npu target) is valid, but not for this API: say so
        metadata.requireBindable()
        val modelBytes = readAsset(asset)
        val sha256 = Artifacts.checkSidecar(modelBytes, metadata)
        val input = Preprocessor.preprocess(
            photo(), metadata.preprocessing, metadata.input.height, metadata.input.width,
        )
        val tensor = Tensors.toInputTensor(input, metadata.input, metadata.preprocessing.pixelsInGraph)
        val start = SystemClock.elapsedRealtimeNanos()
        AcceleratorFallback.open(LiteRtFactory(context, asset, metadata), order, threads, tensor).use { opened ->
            val initMs = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
            val seconds = Benchmark.time(opened, tensor, warmup, runs)
            val outputs = opened.backend.run(tensor)
            val measurement = PhoneMeasurement(
                metadata, asset, sha256, modelBytes.size.toLong(), threads, opened, initMs, warmup,
                LatencyStats.ofSeconds(seconds), peakRssMb(),
            )
            if (metadata.task?.kind == Segmentation.KIND) {
                val overlay = Segmentation.overlay(photo(), Segmentation.classMap(outputs, metadata), metadata)
                val logits = Tensors.dequantize(
                    outputs.getValue(Segmentation.LOGITS), metadata.level(Segmentation.LOGITS),
                )
                return DemoResult(
                    measurement, listOf(logits to LevelStats.of(logits)), overlay.image.toBitmap(), overlay.legend,
                )
            }
            val pyramid = Tensors.pyramid(outputs, metadata)
            val picture = Visualization.pcaPicture(pyramid.first())
            val bitmap = Bitmap.createBitmap(picture.argb, picture.width, picture.height, Bitmap.Config.ARGB_8888)
            return DemoResult(measurement, pyramid.map { it to LevelStats.of(it) }, bitmap)
        }
    }

    /** Writes `<files>/<device>.json` for `edge-backbones report merge`; returns the file. */
    fun saveDeviceJson(results: List<DemoResult>, settings: Map<String, Any?>): File {
        val run = DeviceReport.newRun("edge_backbones android demo", settings)
        run["finished"] = DeviceReport.utcNow()
        val device = DeviceInfo(
            name = "${Build.MANUFACTURER}-${Build.MODEL}".replace(' ', '_'),
            cpuModel = if (Build.VERSION.SDK_INT >= 31) Build.SOC_MODEL else Build.HARDWARE,
            board = Build.BOARD,
            logicalCores = Runtime.getRuntime().availableProcessors(),
            osRelease = Build.VERSION.RELEASE,
            machine = Build.SUPPORTED_ABIS.first(),
            platform = "Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT}) ${Build.FINGERPRINT}",
            versions = mapOf("com.google.ai.edge.litert:litert" to LITERT_VERSION),
        )
        val rows = results.map { DeviceReport.row(it.measurement, run["run_id"] as String) }
        val file = File(context.getExternalFilesDir(null), "${device.name}.json")
        val tmp = File(file.path + ".tmp")
        tmp.writeText(DeviceReport.document(device, listOf(run), rows))
        check(tmp.renameTo(file)) { "Could not move $tmp to $file" }
        return file
    }

    private fun readAsset(name: String) = context.assets.open(name).use { it.readBytes() }

    /** The bundled photo as RGB bytes (Android's JPEG decoder, not OpenCV's: see README). */
    fun photo(): RgbImage {
        val bitmap = readAsset(PHOTO).let { BitmapFactory.decodeByteArray(it, 0, it.size) }
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val rgb = ByteArray(argb.size * 3)
        for (i in argb.indices) {
            rgb[i * 3] = (argb[i] shr 16).toByte()
            rgb[i * 3 + 1] = (argb[i] shr 8).toByte()
            rgb[i * 3 + 2] = argb[i].toByte()
        }
        return RgbImage(bitmap.height, bitmap.width, rgb)
    }

    private fun peakRssMb(): Double? = runCatching {
        File("/proc/self/status").readLines().first { it.startsWith("VmHWM:") }
            .split(Regex("\\s+"))[1].toDouble() / 1024
    }.getOrNull()

    companion object {
        const val PHOTO = "photo.jpg"
        const val LITERT_VERSION = "2.3.0"
    }
}
