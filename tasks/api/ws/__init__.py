"""The websocket command protocol (docs/websocket.md): a thin translator onto the task core."""
