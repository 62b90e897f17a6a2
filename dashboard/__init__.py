"""What the dashboard's pages share: text shown as text, session state, the layer parameter
widgets, charts and the page guard. Streamlit only.

It lives outside `pages/` on purpose: every `.py` file in `pages/` is a page as far as
Streamlit's old folder discovery is concerned, and a helper module there became a blank page.
"""
