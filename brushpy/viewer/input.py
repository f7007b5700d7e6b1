"""Pointer and keyboard events (rendercanvas event dicts) to camera-controller calls.

Mouse buttons follow rendercanvas: 1 left, 2 right, 3 middle. Bindings:

* left drag: orbit; Ctrl + left drag: pan; right drag: look around;
  middle drag: pan; wheel: zoom (one notch = 100 units of ``dy``);
* W/A/S/D/Q/E fly, Shift flies faster;
* the app's own keys (F fullscreen, Home frame) are reported through
  :attr:`InputMapper.actions` so the mapper stays free of window code.

``gui_wants_mouse`` / ``gui_wants_keyboard`` (callables returning bool, e.g.
imgui's ``io.want_capture_mouse``) stop presses, wheel turns and key presses
that the GUI claims from reaching the camera. Releases always get through, so
a key or button released over a panel does not stay stuck.
"""

from __future__ import annotations

from typing import Callable

from .camera import FLY_KEYS, CameraController

#: Keys that trigger app actions rather than camera motion.
ACTION_KEYS = {"f": "toggle_fullscreen", "Home": "frame_scene", "h": "toggle_panels", "v": "toggle_view_mode",
               "r": "toggle_recording"}


class InputMapper:
    """Feeds rendercanvas events to a :class:`CameraController`.

    Args:
        controller: the controller to drive.
        viewport_height: callable returning the view's height in logical
            pixels (pan converts pixels to world units with it).
        gui_wants_mouse, gui_wants_keyboard: callables; True means the GUI
            owns the input right now.

    Attributes:
        actions: names of app actions triggered since the app last cleared it
            (``"toggle_fullscreen"``, ``"frame_scene"``, ``"toggle_panels"``, ``"toggle_view_mode"``,
            ``"toggle_recording"``).
        drag_mode: ``"orbit"``, ``"look"``, ``"pan"`` or None.
    """

    def __init__(
        self,
        controller: CameraController,
        viewport_height: Callable[[], float],
        gui_wants_mouse: Callable[[], bool] = lambda: False,
        gui_wants_keyboard: Callable[[], bool] = lambda: False,
    ):
        self.controller = controller
        self.viewport_height = viewport_height
        self.gui_wants_mouse = gui_wants_mouse
        self.gui_wants_keyboard = gui_wants_keyboard
        self.actions: list[str] = []
        self.drag_mode: str | None = None
        self._drag_button = 0
        self._last = (0.0, 0.0)

    @staticmethod
    def _mode_for(button: int, modifiers) -> str | None:
        if button == 1:
            return "pan" if "Control" in modifiers else "orbit"
        if button == 2:
            return "look"
        if button == 3:
            return "pan"
        return None

    def handle(self, event: dict) -> bool:
        """Process one event; returns True when it affected the camera or queued an action."""
        kind = event.get("event_type")
        ctl = self.controller
        if kind == "pointer_down":
            if self.drag_mode is not None or self.gui_wants_mouse():
                return False
            mode = self._mode_for(event.get("button", 0), event.get("modifiers", ()))
            if mode is None:
                return False
            self.drag_mode, self._drag_button = mode, event.get("button", 0)
            self._last = (event["x"], event["y"])
            return True
        if kind == "pointer_move":
            if self.drag_mode is None:
                return False
            x, y = event["x"], event["y"]
            dx, dy = x - self._last[0], y - self._last[1]
            self._last = (x, y)
            if dx == 0 and dy == 0:
                return False
            if self.drag_mode == "orbit":
                ctl.orbit(dx, dy)
            elif self.drag_mode == "look":
                ctl.look(dx, dy)
            else:
                ctl.pan(dx, dy, self.viewport_height())
            return True
        if kind == "pointer_up":
            if self.drag_mode is not None and event.get("button", 0) == self._drag_button:
                self.drag_mode = None
                return True
            return False
        if kind == "wheel":
            if self.gui_wants_mouse():
                return False
            steps = -float(event.get("dy", 0.0)) / 100.0
            if steps:
                ctl.zoom(steps)
                return True
            return False
        if kind in ("key_down", "key_up"):
            down = kind == "key_down"
            key = event.get("key", "")
            modifiers = event.get("modifiers", ())
            if key == "Shift":
                ctl.fast = down
                return False
            if down and self.gui_wants_keyboard():
                return False
            ctl.fast = "Shift" in modifiers if down else ctl.fast
            name = key.lower() if len(key) == 1 else key
            if name in FLY_KEYS:
                was = name in ctl.keys
                ctl.set_key(name, down)
                return was != down
            if down and name in ACTION_KEYS and "Control" not in modifiers:
                self.actions.append(ACTION_KEYS[name])
                return True
            return False
        if kind == "pointer_leave":
            return False
        return False

    def release_all(self):
        """Forget drags and held keys (window lost focus, new scene...)."""
        self.drag_mode = None
        self.controller.release_all()
