package io.github.edgebackbones.demo

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.Image
import androidx.compose.foundation.background
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.size
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.FilterChip
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Slider
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.unit.dp
import io.github.edgebackbones.core.Accelerator
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** Accelerator orders the user picks from; CPU appears only where it is asked for. */
private val ORDERS = listOf(
    listOf(Accelerator.NPU, Accelerator.GPU, Accelerator.CPU),
    listOf(Accelerator.GPU, Accelerator.CPU),
    listOf(Accelerator.NPU),
    listOf(Accelerator.GPU),
    listOf(Accelerator.CPU),
)

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val demo = DemoRun(this)
        setContent {
            MaterialTheme {
                var tapToSegment by remember { mutableStateOf(false) }
                Column {
                    Row {
                        FilterChip(selected = !tapToSegment, onClick = { tapToSegment = false },
                            label = { Text("Run an artifact") })
                        FilterChip(selected = tapToSegment, onClick = { tapToSegment = true },
                            label = { Text("Tap to segment (SAM)") })
                    }
                    if (tapToSegment) TapToSegmentScreen(demo) else DemoScreen(demo)
                }
            }
        }
    }
}

@Composable
private fun DemoScreen(demo: DemoRun) {
    val scope = rememberCoroutineScope()
    val artifacts = remember { demo.artifacts() }
    var artifact by remember { mutableStateOf(artifacts.firstOrNull()) }
    var order by remember { mutableStateOf(ORDERS.first()) }
    var threads by remember { mutableStateOf(4f) }
    var results by remember { mutableStateOf(listOf<DemoResult>()) }
    var status by remember { mutableStateOf("Pick an artifact and press Run.") }
    Column(Modifier.padding(12.dp).verticalScroll(rememberScrollState())) {
        Text("Artifact (assets/*.tflite + sidecar .json)")
        artifacts.forEach { name ->
            FilterChip(selected = name == artifact, onClick = { artifact = name }, label = { Text(name) })
        }
        Text("Accelerator order")
        ORDERS.forEach { o ->
            FilterChip(selected = o == order, onClick = { order = o }, label = { Text(o.joinToString(" → ")) })
        }
        Text("CPU threads: ${threads.toInt()}")
        Slider(value = threads, onValueChange = { threads = it }, valueRange = 1f..8f, steps = 6)
        Row {
            Button(enabled = artifact != null, onClick = {
                status = "Running…"
                scope.launch {
                    status = try {
                        val result = withContext(Dispatchers.Default) {
                            demo.run(artifact!!, order, threads.toInt(), warmup = 5, runs = 50)
                        }
                        results = results + result
                        "Done."
                    } catch (e: Exception) {
                        "Failed: ${e.message}"
                    }
                }
            }) { Text("Run") }
            Button(enabled = results.isNotEmpty(), onClick = {
                scope.launch {
                    val file = withContext(Dispatchers.IO) {
                        demo.saveDeviceJson(results, mapOf("threads" to results.map { it.measurement.threads }.distinct(),
                            "runs" to 50, "warmup" to 5, "accelerator_order" to order.map { it.name }))
                    }
                    status = "Saved $file (adb pull it, then `edge-backbones report merge laptop.json it.json`)."
                }
            }) { Text("Save device JSON") }
        }
        Text(status)
        results.lastOrNull()?.let { ResultView(it) }
    }
}

@Composable
private fun ResultView(result: DemoResult) {
    val m = result.measurement
    val ran = m.opened
    // a fallback is shown in red: never a silent change of accelerator
    Text("Ran on: ${ran.describe()}", color = if (ran.fellBack) Color.Red else Color.Unspecified)
    Text("${m.metadata.modelName} ${m.metadata.mode}, ${m.threads} threads, init %.1f ms".format(m.initMs))
    Text("Latency over %d runs: median %.2f ms, p5 %.2f, p95 %.2f".format(
        m.latency.runs, m.latency.median, m.latency.p5, m.latency.p95))
    result.levels.forEach { (level, s) ->
        Text("${level.name} ${level.shape}: mean %.4f std %.4f min %.4f max %.4f".format(s.mean, s.std, s.min, s.max))
    }
    if (result.legend.isEmpty()) {
        Text("${result.levels.first().first.name}: first three principal components as RGB")
    } else {
        Text("Class map over the photo (classes from the sidecar)")
    }
    Image(result.picture.asImageBitmap(), null, Modifier.fillMaxWidth(), filterQuality = FilterQuality.None)
    // the legend :core computed: the classes covering the most pixels
    result.legend.forEach { entry ->
        Row {
            Box(Modifier.size(18.dp).background(Color(0xFF000000 or entry.rgb.toLong())))
            Text("  ${entry.name} %.1f%%".format(100 * entry.share))
        }
    }
}
