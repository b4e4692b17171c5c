"""Answering: the predictor, the Gradio app and the HTTP API."""
