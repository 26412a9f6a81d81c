package io.github.edgebackbones.demo

import androidx.compose.foundation.Canvas
import androidx.compose.foundation.Image
import androidx.compose.foundation.gestures.detectTapGestures
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Button
import androidx.compose.material3.FilterChip
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.DisposableEffect
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.geometry.Offset
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.input.pointer.pointerInput
import androidx.compose.ui.layout.ContentScale
import androidx.compose.ui.layout.onSizeChanged
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.unit.IntSize
import androidx.compose.ui.unit.dp
import io.github.edgebackbones.core.PixelPoint
import io.github.edgebackbones.core.ViewMapping
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * The bundled photo; each tap adds a foreground (or background) point and SAM's best mask is
 * drawn over the photo. The photo is shown fitted (ContentScale.Fit), which is the mapping
 * :core's [ViewMapping] inverts.
 */
@Composable
fun TapToSegmentScreen(demo: DemoRun) {
    val context = LocalContext.current
    val scope = rememberCoroutineScope()
    val pair = remember { demo.samPairs().firstOrNull() }
    if (pair == null) {
        Text("No SAM encoder + decoder pair in assets/: run tools/bundle_assets.sh.", Modifier.padding(12.dp))
        return
    }
    val photo = remember { demo.photo() }
    // a pair whose sidecars do not match is refused by :core: say why instead of crashing
    val opened = remember { runCatching { SamSession(context, pair, threads = 4) } }
    val session = opened.getOrElse {
        Text("Cannot open ${pair.encoder} + ${pair.decoder}: ${it.message}", Modifier.padding(12.dp))
        return
    }
    DisposableEffect(session) { onDispose { session.close() } }
    var status by remember { mutableStateOf("Encoding the photo…") }
    var picture by remember { mutableStateOf(photo.toBitmap()) }
    var points by remember { mutableStateOf(listOf<PixelPoint>()) }
    var labels by remember { mutableStateOf(listOf<Int>()) }
    var foreground by remember { mutableStateOf(true) }
    var encoded by remember { mutableStateOf(false) }
    var viewSize by remember { mutableStateOf(IntSize.Zero) }
    LaunchedEffect(session) {
        val ms = withContext(Dispatchers.Default) { session.setImage(photo) }
        encoded = true
        status = "${pair.encoder}: encoder %.1f ms. Tap the photo.".format(ms)
    }

    fun segment(newPoints: List<PixelPoint>, newLabels: List<Int>) {
        scope.launch {
            status = try {
                val result = withContext(Dispatchers.Default) { session.segment(newPoints, newLabels, null) }
                points = newPoints
                labels = newLabels
                picture = result.picture
                val best = result.masks.best
                "mask ${best + 1} of ${result.masks.scores.size}: predicted IoU %.3f, decoder %.1f ms"
                    .format(result.masks.scores[best], result.decoderMs)
            } catch (e: Exception) {
                // a typed :core error (e.g. too many points): the session stays usable
                "Failed: ${e.message}"
            }
        }
    }

    Column(Modifier.padding(12.dp)) {
        Row {
            FilterChip(selected = foreground, onClick = { foreground = true }, label = { Text("Foreground") })
            FilterChip(selected = !foreground, onClick = { foreground = false }, label = { Text("Background") })
            Button(onClick = {
                points = emptyList()
                labels = emptyList()
                picture = photo.toBitmap()
            }) { Text("Clear") }
        }
        Text(status)
        Box(
            Modifier.fillMaxWidth().onSizeChanged { viewSize = it }.pointerInput(encoded) {
                detectTapGestures { tap ->
                    if (!encoded) return@detectTapGestures
                    val point = ViewMapping.viewToImage(
                        tap.x.toDouble(), tap.y.toDouble(), viewSize.width, viewSize.height,
                        photo.width, photo.height,
                    ) ?: return@detectTapGestures
                    segment(points + point, labels + if (foreground) 1 else 0)
                }
            },
        ) {
            Image(picture.asImageBitmap(), null, Modifier.fillMaxWidth(), contentScale = ContentScale.Fit)
            Canvas(Modifier.matchParentSize()) {
                for ((point, label) in points.zip(labels)) {
                    val at = ViewMapping.imageToView(point, viewSize.width, viewSize.height, photo.width, photo.height)
                    val centre = Offset(at.x.toFloat(), at.y.toFloat())
                    drawCircle(Color.White, radius = 12f, center = centre)
                    drawCircle(if (label == 1) Color(0xFF00DC00) else Color(0xFFE60000), radius = 9f, center = centre)
                }
            }
        }
    }
}
