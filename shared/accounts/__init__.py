"""Connected accounts across services: leaving AutoDM, token health."""
