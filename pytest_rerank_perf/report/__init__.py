"""The run report: one typed ``RunReport`` (``run_report``), the table model (``tables``), the index page
(``markdown``), the plots (``plots``) and the report folder (``folder``)."""
