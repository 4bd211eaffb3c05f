"""An RTSP camera on loopback for the stream tests: GStreamer's RTSP server (Debian's
`gir1.2-gst-rtsp-server-1.0`, run by the system Python, which has `gi`) publishing a folder of PNG
frames as H.264 at `/cam`, looping (FFmpeg alone cannot serve RTSP to a reader).

    /usr/bin/python3 tests/helpers/rtsp_server.py <port> <folder of %04d.png> <fps>
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, folder, fps = sys.argv[1], sys.argv[2], int(sys.argv[3])
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( multifilesrc location={folder}/%04d.png loop=true caps=image/png,framerate={fps}/1 "
    "! pngdec ! videoconvert ! video/x-raw,format=I420 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 "
    "! rtph264pay name=pay0 pt=96 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
