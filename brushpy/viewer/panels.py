"""The viewer's imgui panels: scene, render settings, stats, training, dataset views, close prompt.

:class:`ViewerPanels` draws them each frame for a
:class:`~brushpy.viewer.app.ViewerApp`: the main window at the top left
(error and status lines, scene, render settings, stats, controls), the
training window at the top right while a dataset trains (progress, plots,
buttons, the dataset's views with a ground-truth thumbnail), and the modal
"export before closing?" prompt. Actions go to the app's
:class:`~brushpy.viewer.session.ViewerSession`; the panels keep only GUI state
(the thumbnail texture, whether a widget is held).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import wgpu

HELP_TEXT = (
    "Left drag: orbit    Right drag: look around\n"
    "Middle drag / Ctrl+left drag: pan    Wheel: zoom\n"
    "W/A/S/D fly, Q/E down/up, Shift faster\n"
    "Home: frame scene    F: fullscreen    H: hide panels\n"
    "V: colour / depth view    R: record camera path"
)
CLOSE_PROMPT = "Close while training?"


class GtTexture(NamedTuple):
    """The ground-truth thumbnail of the selected dataset view, uploaded for imgui."""

    key: tuple  # ("train" | "eval", index)
    texture: object  # wgpu texture
    view: object  # its texture view
    ref: object  # imgui's reference to the view
    size: tuple[int, int]  # (width, height) in pixels


class ViewerPanels:
    """Draws the imgui panels of ``app`` (a :class:`~brushpy.viewer.app.ViewerApp`).

    Attributes:
        gui_active: a widget was held during the last frame (the user is interacting).
        gt_texture: the :class:`GtTexture` thumbnail of the selected view, or None.
        expand_dataset: open the "Dataset" section on the next frame (after a jump to a view).
    """

    def __init__(self, app):
        self.app = app
        self.gui_active = False
        self.gt_texture: GtTexture | None = None
        self.expand_dataset = False
        self._implot_ready = False

    @property
    def session(self):
        return self.app.session

    def draw(self) -> None:
        """Lay out this frame's panels (the imgui renderer's gui function); nothing while hidden."""
        from imgui_bundle import imgui

        app, session = self.app, self.session
        if not app.show_panels:
            return
        imgui.set_next_window_pos((8, 8), imgui.Cond_.first_use_ever)
        w, h = app.canvas.get_logical_size()
        width = min(330, max(160, w - 16))
        # fixed width; the height follows the open sections, up to the window's
        imgui.set_next_window_size_constraints((width, 0), (width, max(60, h - 16)))
        imgui.set_next_window_bg_alpha(0.85)
        expanded, _ = imgui.begin("brushpy", None, imgui.WindowFlags_.always_auto_resize)
        if expanded:
            if session.error:
                imgui.push_text_wrap_pos(320)
                imgui.text_colored((1.0, 0.35, 0.3, 1.0), session.error)
                imgui.pop_text_wrap_pos()
                if imgui.small_button("Dismiss"):
                    session.error = None
            if session.status:
                imgui.text(session.status)
            if imgui.collapsing_header("Scene", imgui.TreeNodeFlags_.default_open):
                self.scene_panel(imgui)
            if imgui.collapsing_header("Render settings", imgui.TreeNodeFlags_.default_open):
                self.settings_panel(imgui)
            if imgui.collapsing_header("Stats", imgui.TreeNodeFlags_.default_open):
                self.stats_panel(imgui)
            if imgui.collapsing_header("Camera path"):
                self.camera_path_panel(imgui)
            if imgui.collapsing_header("Controls"):
                imgui.text(HELP_TEXT)
        self.gui_active = imgui.is_any_item_active()
        imgui.end()
        if session.training is not None:
            # a second window at the top right: training, then the dataset views
            imgui.set_next_window_pos((max(8, w - width - 8), 8), imgui.Cond_.first_use_ever)
            imgui.set_next_window_size_constraints((width, 0), (width, max(60, h - 16)))
            imgui.set_next_window_bg_alpha(0.85)
            expanded, _ = imgui.begin("Training", None, imgui.WindowFlags_.always_auto_resize)
            if expanded:
                self.training_panel(imgui)
                if self.expand_dataset:
                    imgui.set_next_item_open(True)
                    self.expand_dataset = False
                if session.dataset is not None and imgui.collapsing_header("Dataset"):
                    self.dataset_panel(imgui)
            self.gui_active = self.gui_active or imgui.is_any_item_active()
            imgui.end()
        self.close_prompt(imgui)

    def scene_panel(self, imgui) -> None:
        """The path field with its Open button, what the scene is, the frame slider of a folder / zip."""
        session = self.session
        changed, session.path_input = imgui.input_text("##path", session.path_input)
        imgui.same_line()
        if imgui.button("Open") and session.path_input.strip():
            session.open(session.path_input.strip())
        sc = session.scene
        if sc is None:
            imgui.text("No scene: open a .ply, a folder or a .zip of them")
            imgui.text("(or drop one on the window)")
            return
        imgui.text(f"File: {sc.name}")
        if sc.source is not None:
            imgui.text_disabled(str(sc.source.path.parent))
        for line in sc.info_lines():
            imgui.text(line)
        if len(sc.sources) > 1:
            changed, idx = imgui.slider_int("Frame", sc.frame, 0, len(sc.sources) - 1)
            if changed and not session.loading:
                session.show_frame(idx)
        if imgui.button("Frame scene (Home)"):
            self.app.frame_scene()

    def settings_panel(self, imgui) -> None:
        """The scene kind's own settings, then SH degree, splat scale, field of view, background,
        render resolutions and fly speed."""
        app, scene = self.app, self.session.scene
        if scene is not None and scene.settings_panel(imgui):  # e.g. a MIP scene's temperature, gain
            app.retry_render()
        s = app.settings
        if scene is None or scene.view_for(app.view) is app.view:  # splat scenes (a MIP scene has its own view)
            self.view_mode_panel(imgui)
        max_sh = scene.sh_degree if scene is not None else 0
        current = max_sh if s.sh_degree is None else min(s.sh_degree, max_sh)
        changed, v = imgui.slider_int("SH degree", current, 0, max_sh)
        if changed:
            s.sh_degree = v
        changed, v = imgui.slider_float("Splat scale", s.splat_scale, 0.01, 2.0, "%.2f", imgui.SliderFlags_.logarithmic)
        if changed:
            s.splat_scale = max(v, 1e-3)
        changed, v = imgui.slider_float("Field of view", s.fov_y_deg, 10.0, 120.0, "%.0f deg")
        if changed:
            s.fov_y_deg = v
        changed, v = imgui.color_edit3("Background", list(s.background))
        if changed:
            s.background = tuple(float(c) for c in v)
        changed, v = imgui.slider_float("Resolution", s.render_scale, 0.25, 1.0, "%.2f")
        if changed:
            s.render_scale = v
        changed, v = imgui.slider_float("Res. moving", s.moving_render_scale, 0.25, 1.0, "%.2f")
        if changed:
            s.moving_render_scale = v
        fly = app.controller.settings
        changed, v = imgui.slider_float("Fly speed", fly.fly_speed, 1e-3, 1e3, "%.3g", imgui.SliderFlags_.logarithmic)
        if changed:
            fly.fly_speed = v

    def view_mode_panel(self, imgui) -> None:
        """"Show: colour / depth"; in depth view the near / far depths (scene units; "auto" = the
        frame's 2nd / 98th depth percentile, shown greyed) and the colormap."""
        from .mip_view import COLORMAPS

        app, s = self.app, self.app.settings
        imgui.text("Show:")
        imgui.same_line()
        if imgui.radio_button("colour", s.view_mode == "color"):
            s.view_mode = "color"
        imgui.same_line()
        if imgui.radio_button("depth", s.view_mode == "depth"):
            s.view_mode = "depth"
        if s.view_mode != "depth":
            return
        shown = app.view.depth_range or (0.0, 1.0)
        for i, (label, attr) in enumerate((("Near", "depth_near"), ("Far", "depth_far"))):
            value = getattr(s, attr)
            changed, auto = imgui.checkbox(f"auto##{attr}", value is None)
            if changed:
                value = None if auto else float(shown[i])
            imgui.same_line()
            imgui.begin_disabled(value is None)
            edited, v = imgui.input_float(label, float(shown[i] if value is None else value), 0.0, 0.0, "%.4g")
            imgui.end_disabled()
            if edited and value is not None:
                value = max(float(v), 0.0)
            setattr(s, attr, value)
        if s.depth_near is not None and s.depth_far is not None and not s.depth_far > s.depth_near:
            s.depth_far = s.depth_near + max(abs(s.depth_near) * 1e-3, 1e-6)  # keep the settings valid
        names = list(COLORMAPS)
        changed, idx = imgui.combo("Depth colours", names.index(s.depth_colormap), names)
        if changed:
            s.depth_colormap = names[idx]

    def stats_panel(self, imgui) -> None:
        """Frame rate and times, visible splats, render size, the GPU and its backend."""
        app, scene = self.app, self.session.scene
        info = app.gpu.adapter.info
        imgui.text(f"FPS: {app.fps:.1f}   frame: {app.frame_ms:.1f} ms")
        view = app.view if scene is None else scene.view_for(app.view)
        imgui.text(f"Splat render: {app.render_ms:.1f} ms ({view.renders} renders)")
        state = app.view.state
        if state is not None and getattr(state, "num_visible", None) is not None:
            imgui.text(f"Visible splats: {state.num_visible:,}")
        rw, rh = app.render_size()
        imgui.text(f"Render size: {rw} x {rh}")
        imgui.text(f"GPU: {info.get('device', '?')}")
        imgui.text(f"Backend: {info.get('backend_type', '?')}  {info.get('adapter_type', '')}")

    def camera_path_panel(self, imgui) -> None:
        """Record the camera's path to a nerfstudio camera-path JSON (the file field; Record / Stop
        and save, also the R key); ``brushpy render SCENE --path FILE.json -o out.mp4`` plays it."""
        app = self.app
        rec = app.recorder
        changed, text = imgui.input_text("##record_path", str(app.record_path))
        if changed and text.strip():
            app.record_path = text.strip()
        if rec.recording:
            if imgui.button("Stop and save (R)"):
                app.stop_recording()
            imgui.same_line()
            imgui.text_colored((1.0, 0.35, 0.3, 1.0), f"REC {rec.duration_s:.1f} s")
        elif imgui.button("Record path (R)"):
            app.start_recording()
        if app.record_message:
            imgui.push_text_wrap_pos(320)
            imgui.text_disabled(app.record_message)
            imgui.pop_text_wrap_pos()

    def training_panel(self, imgui) -> None:
        """Progress, speed, loss and PSNR with their plots; pause, export, evaluate and finish buttons;
        the evaluation and export intervals."""
        from imgui_bundle import implot

        session = self.session
        tr = session.training
        if not self._implot_ready:
            implot.create_context()
            self._implot_ready = True
        state = "finished" if tr.finished else ("stopped" if tr.error else ("paused" if tr.paused else "training"))
        imgui.text(f"{state}: step {tr.step:,} / {tr.total_steps:,}")
        imgui.progress_bar(tr.step / max(tr.total_steps, 1), (-1, 0))
        eta = tr.eta_s
        eta_text = "-" if eta is None else (f"{eta / 60:.1f} min" if eta >= 90 else f"{eta:.0f} s")
        imgui.text(f"{tr.steps_per_s:.2f} it/s   ETA {eta_text}")
        loss = f"{tr.loss_values[-1]:.4f}" if tr.loss_values else "-"
        imgui.text(f"Splats: {tr.trainer.splats.num_splats:,}   loss {loss}")
        if tr.psnr_values:
            imgui.text(f"Eval PSNR: {tr.psnr_values[-1]:.2f} dB (step {tr.psnr_steps[-1]:,})")
        if tr.active:
            if imgui.button("Resume" if tr.paused else "Pause"):
                session.pause_training(not tr.paused)
            imgui.same_line()
        if imgui.button("Export now"):
            session.guarded(tr.export_now)
        imgui.same_line()
        if imgui.button("Evaluate"):
            session.guarded(tr.evaluate_now)
        if tr.active:
            imgui.same_line()
            if imgui.button("Finish now"):
                session.guarded(tr.finish)
        changed, v = imgui.input_int("Eval every", tr.process.eval_every, 100)
        if changed:
            tr.process.eval_every = max(0, v)
        changed, v = imgui.input_int("Export every", tr.process.export_every, 500)
        if changed:
            tr.process.export_every = max(0, v)
        if tr.message:
            imgui.push_text_wrap_pos(320)
            imgui.text_disabled(tr.message)
            imgui.pop_text_wrap_pos()
        imgui.push_text_wrap_pos(320)
        imgui.text_disabled(f"exports: {tr.outputs.out_dir}")
        imgui.pop_text_wrap_pos()
        xs, ys = tr.loss_curve()
        if implot.begin_plot("Loss", (-1, 110), implot.Flags_.no_legend):
            implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
            if len(xs):
                implot.plot_line("loss", xs, ys)
            implot.end_plot()
        px, py = tr.psnr_curve()
        if len(px) and implot.begin_plot("Eval PSNR (dB)", (-1, 90), implot.Flags_.no_legend):
            implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
            implot.plot_line("psnr", px, py)
            implot.plot_scatter("##psnr_points", px, py)
            implot.end_plot()

    def dataset_panel(self, imgui) -> None:
        """The selected view with its ground-truth thumbnail, and the train / eval view lists
        (a click jumps the camera to that view)."""
        app, session = self.app, self.session
        ds = session.dataset
        imgui.text(f"{ds.name}: {len(ds.train_views)} train, {len(ds.eval_views)} eval views")
        sel = session.selected_view
        if sel is None:
            imgui.text_disabled("Click a view to see it from its camera")
        else:
            view = session.dataset_views(sel[0])[sel[1]]
            imgui.text(f"{sel[0]} {sel[1]}: {view.name}")
            imgui.same_line()
            if imgui.small_button("Jump again"):
                app.jump_to_view(*sel)
            ref, (w, h) = self.gt_image(sel, view)
            if ref is not None:
                imgui.image(ref, (w, h))
                imgui.same_line()
                imgui.text_disabled("ground truth;\nthe view behind\nshows the render\nfrom its camera")
        for split in ("train", "eval"):
            views = session.dataset_views(split)
            if not views:
                continue
            imgui.text(f"{split.capitalize()} views")
            if imgui.begin_list_box(f"##{split}_views", (-1, 60)):
                for i, v in enumerate(views):
                    selected = session.selected_view == (split, i)
                    clicked, _ = imgui.selectable(f"{i}: {v.name}##{split}{i}", selected)
                    if clicked:
                        app.jump_to_view(split, i)
                imgui.end_list_box()

    def gt_image(self, key, view, max_width: int = 160):
        """The ground-truth image of ``view`` as an imgui texture (cached for the selected view);
        returns ``(imgui reference, (width, height))``."""
        cached = self.gt_texture
        if cached is not None and cached.key == key:
            return cached.ref, cached.size
        self.release_gt_texture()
        from PIL import Image

        img = np.asarray(view.image)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.shape[2] == 4:  # over the training background, as the renders are
            training = self.session.training
            bg = np.asarray(training.config.background_color if training else (0, 0, 0), np.float32) * 255.0
            a = img[..., 3:4].astype(np.float32) / 255.0
            img = (img[..., :3] * a + bg * (1.0 - a) + 0.5).astype(np.uint8)
        h, w = img.shape[:2]
        scale = max_width / max(w, h, 1)  # small training images are enlarged too
        tw, th = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        pil = Image.fromarray(np.ascontiguousarray(img[..., :3]))
        if (tw, th) != (w, h):
            pil = pil.resize((tw, th), Image.BILINEAR)
        rgba = np.ascontiguousarray(np.asarray(pil.convert("RGBA")))
        device = self.app.device
        tex = device.create_texture(size=(tw, th, 1), format=wgpu.TextureFormat.rgba8unorm,
                                    usage=wgpu.TextureUsage.TEXTURE_BINDING | wgpu.TextureUsage.COPY_DST,
                                    label="viewer_gt")
        device.queue.write_texture({"texture": tex}, rgba, {"bytes_per_row": 4 * tw, "rows_per_image": th}, (tw, th, 1))
        tview = tex.create_view()
        ref = self.app.imgui_renderer.backend.register_texture(tview)
        self.gt_texture = GtTexture(key, tex, tview, ref, (tw, th))
        return ref, (tw, th)

    def release_gt_texture(self) -> None:
        """Drop the ground-truth thumbnail (a new dataset: its views differ)."""
        if self.gt_texture is not None:
            self.app.imgui_renderer.backend.unregister_texture(self.gt_texture.ref)
            self.gt_texture = None

    def close_prompt(self, imgui) -> None:
        """The modal "export before closing?" prompt while the session asks it; its answer goes
        to :meth:`~brushpy.viewer.session.ViewerSession.answer_close_prompt`."""
        session = self.session
        if not session.close_prompt_open:
            if imgui.is_popup_open(CLOSE_PROMPT):  # answered from code: close it
                if imgui.begin_popup_modal(CLOSE_PROMPT, None, imgui.WindowFlags_.always_auto_resize)[0]:
                    imgui.close_current_popup()
                    imgui.end_popup()
            return
        if not imgui.is_popup_open(CLOSE_PROMPT):
            imgui.open_popup(CLOSE_PROMPT)
        w, h = self.app.canvas.get_logical_size()
        imgui.set_next_window_pos((w / 2, h / 2), imgui.Cond_.always, (0.5, 0.5))
        if imgui.begin_popup_modal(CLOSE_PROMPT, None, imgui.WindowFlags_.always_auto_resize)[0]:
            tr = session.training
            imgui.text(f"Training is at step {tr.step:,} of {tr.total_steps:,}.")
            imgui.text("Export the splats before closing?")
            answer = None
            if imgui.button("Export and close"):
                answer = "export"
            imgui.same_line()
            if imgui.button("Close without exporting"):
                answer = "discard"
            imgui.same_line()
            if imgui.button("Cancel"):
                answer = "cancel"
            if answer is not None:
                imgui.close_current_popup()
            imgui.end_popup()
            if answer is not None:
                session.answer_close_prompt(answer)


__all__ = ["HELP_TEXT", "GtTexture", "ViewerPanels"]
